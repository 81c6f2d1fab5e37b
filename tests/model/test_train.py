"""Training on a tiny prepared folder of real sentences; checkpoints are safetensors + JSON only."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from healthner.config import Params
from healthner.corpus.labels import OUTSIDE, TAGS, is_valid_transition
from healthner.corpus.vocab import VOCAB_FILE, CharVocab
from healthner.model.folder import CONFIG_FILE, LABELS_FILE, LEXICON_FILE, MODEL_FILE
from healthner.model.losses import Objective
from healthner.model.predict import SlotPredictor
from healthner.model.train import (
    SUMMARY_FILE,
    TrainResult,
    Windows,
    bucketed_batches,
    build_model,
    train,
    training_featurizer,
)

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def test_a_few_optimiser_steps_lower_the_loss(tiny_params: Params) -> None:
    torch.manual_seed(0)
    prepared = tiny_params.prepare.output_dir / "bert"
    vocab = CharVocab.load(prepared)
    windows = Windows.read(prepared / "train.parquet", training_featurizer(tiny_params))
    model = build_model(tiny_params, "bert", vocab)
    objective = Objective(tiny_params.loss, tiny_params.model.use_crf)
    batch = windows.collate(list(range(16)), vocab.pad_id)
    opt = torch.optim.AdamW(model.parameters(), lr=tiny_params.train.learning_rate)
    model.train()
    losses = []
    for _ in range(8):
        parts = objective(model, *batch)
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        model.enforce_constraints()
        losses.append(parts.total.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_bucketed_batches_cover_every_window_once() -> None:
    lengths = list(np.random.default_rng(0).integers(3, 60, size=203))
    batches = bucketed_batches(lengths, 16, np.random.default_rng(1))
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert all(len(b) <= 16 for b in batches)


@pytest.fixture
def trained(tiny_params: Params) -> tuple[Params, TrainResult]:
    return tiny_params, train(tiny_params, "bert")


def test_train_saves_a_pickle_free_checkpoint_and_reports(trained: tuple[Params, TrainResult]) -> None:
    params, result = trained
    assert result.model_dir == params.train.output_dir / "bert"
    assert 1 <= result.epochs_run <= params.train.epochs and 0.0 <= result.best_dev_f1 <= 1.0
    files = {p.name for p in result.model_dir.iterdir()}
    # default: lexicon features
    assert {MODEL_FILE, CONFIG_FILE, LABELS_FILE, VOCAB_FILE, SUMMARY_FILE, LEXICON_FILE} <= files
    assert not [p for p in result.model_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert json.loads((result.model_dir / LABELS_FILE).read_text()) == list(TAGS)
    summary = json.loads((result.model_dir / SUMMARY_FILE).read_text())
    assert summary["steps"] > 0 and summary["chars_per_second"] > 0
    metrics = params.train.reports_dir / "bert" / "plots" / "metrics"
    assert (metrics / "dev" / "f1.tsv").is_file() and (metrics / "train" / "loss.tsv").is_file()
    assert "bert" in str(result) and "dev F1" in str(result)


def test_max_steps_caps_optimiser_steps(tiny_params: Params) -> None:
    params = tiny_params.with_updates(train={"max_steps": 3})
    assert train(params, "bert").steps == 3


def _sentences(params: Params) -> list[list[str]]:
    """Dev sentences, a long one (several windows), one of a single character and an empty one."""
    from healthner.corpus.readers import read_sentences

    dev = [s.chars for s in read_sentences(params.prepare.output_dir / "dev.parquet")]
    long = [c for s in dev[:8] for c in s]
    assert len(long) > 2 * params.prepare.window_chars
    return dev[:12] + [long, ["痛"], []]


def test_save_then_load_gives_identical_predictions(trained: tuple[Params, TrainResult], monkeypatch) -> None:
    params, result = trained

    def no_pickles(*args, **kwargs):
        raise AssertionError("checkpoints must load without torch.load")

    monkeypatch.setattr(torch, "load", no_pickles)
    loaded = SlotPredictor.load(result.model_dir)
    again = SlotPredictor.load(result.model_dir)
    sentences = _sentences(params)
    assert loaded.decode(sentences) == again.decode(sentences)
    for a, b in zip(loaded.marginals(sentences), again.marginals(sentences)):
        np.testing.assert_array_equal(a, b)


def test_predictor_marginals_and_tags_for_any_length(trained: tuple[Params, TrainResult]) -> None:
    params, result = trained
    predictor = SlotPredictor.load(result.model_dir, batch_chars=256)
    sentences = _sentences(params)
    marginals, tags = predictor.marginals(sentences), predictor.decode(sentences)
    assert [m.shape for m in marginals] == [(len(s), len(TAGS)) for s in sentences]
    assert all(m.dtype == np.float32 for m in marginals)
    for m in marginals[:-1]:
        np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)
    assert [len(t) for t in tags] == [len(s) for s in sentences]
    for path in tags:
        full = [OUTSIDE, *path]
        assert all(is_valid_transition(a, b) for a, b in itertools.pairwise(full))
    # batching must not change results: one sentence at a time gives the same tags
    assert [predictor.decode([s])[0] for s in sentences[-3:]] == tags[-3:]


def test_int8_quantised_predictor_stays_close_to_float(trained: tuple[Params, TrainResult]) -> None:
    params, result = trained
    sentences = _sentences(params)
    exact = SlotPredictor.load(result.model_dir).marginals(sentences)
    quantised = SlotPredictor.load(result.model_dir, precision="int8")
    assert any(".quantized." in type(m).__module__ for m in quantised.model.modules())
    for a, b in zip(exact, quantised.marginals(sentences)):
        assert a.shape == b.shape
        assert a.size == 0 or np.abs(a - b).max() < 0.2  # int8 weights move probabilities a little, not the picture
    for path in quantised.decode(sentences):
        full = [OUTSIDE, *path]
        assert all(is_valid_transition(a, b) for a, b in itertools.pairwise(full))


def test_bfloat16_predictor_stays_close_to_float(trained: tuple[Params, TrainResult]) -> None:
    params, result = trained
    sentences = _sentences(params)
    exact = SlotPredictor.load(result.model_dir)
    half = SlotPredictor.load(result.model_dir, precision="bfloat16")
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in exact.model.parameters()} == {torch.float32}  # float32 unless asked
    for a, b in zip(exact.marginals(sentences), half.marginals(sentences)):
        assert a.shape == b.shape and b.dtype == np.float32
        assert a.size == 0 or np.abs(a - b).max() < 0.2
    for path in half.decode(sentences):
        full = [OUTSIDE, *path]
        assert all(is_valid_transition(a, b) for a, b in itertools.pairwise(full))
