"""A trained member under ONNX Runtime: emissions as torch's, the same tags and dev F1, stale graphs refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.readers import Sentence, read_sentences
from healthner.model.folder import MODEL_FILE, read_member
from healthner.model.metrics import score
from healthner.model.onnx_runtime import ONNX_FILE, OnnxEmissions, graph_is_current, resolve_runtime
from healthner.model.predict import SlotPredictor
from healthner.model.train import train
from tests.tiny_models import N_TRAIN, OVERLAP, REPO, WINDOW, tiny_encoders, tiny_lexicon, write_prepared

EMISSIONS_ATOL = 1e-4


@pytest.fixture(scope="module")
def member(tmp_path_factory, real_sentences: list[Sentence]) -> tuple[Path, list[Sentence]]:
    """A tiny bert member trained on real sentences (lexicon + LAC features, BiLSTM, CRF), and its dev split."""
    root = tmp_path_factory.mktemp("onnx")
    params = load_params(REPO / "params.yaml").with_updates(
        prepare={"output_dir": root / "prepared", "window_chars": WINDOW, "window_overlap": OVERLAP},
        model={"lstm_hidden": 16}, lexicon={"output": tiny_lexicon(root)},
        train={"output_dir": root / "models", "reports_dir": root / "reports", "epochs": 2, "batch_size": 16,
               "torch_threads": 1, "learning_rate": 5e-3, "patience": 2, "device": "cpu"},
    )
    params = Params.model_validate({**params.model_dump(by_alias=True), "encoders": tiny_encoders()})
    write_prepared(params, "bert", real_sentences[:N_TRAIN], real_sentences[N_TRAIN:])
    result = train(params, "bert")
    return result.model_dir, read_sentences(params.prepare.output_dir / "dev.parquet")


def sentences_of(dev: list[Sentence]) -> list[list[str]]:
    """The dev sentences, one longer than several windows, one character and an empty one."""
    chars = [s.chars for s in dev]
    return chars + [[c for s in chars[:8] for c in s], ["痛"], []]


def test_training_writes_a_graph_of_its_best_weights(member) -> None:
    model_dir, _ = member
    assert (model_dir / ONNX_FILE).is_file() and graph_is_current(model_dir)
    runner = OnnxEmissions(model_dir / ONNX_FILE, threads=1)
    assert runner.input_names == ["input_ids", "attention_mask", "features"]


def test_the_bilstm_is_one_bidirectional_node_fed_the_lengths(member) -> None:
    """No row reversals around a second LSTM: one bidirectional LSTM node per layer, with sequence_lens."""
    import onnx

    model_dir, _ = member
    nodes = onnx.load(str(model_dir / ONNX_FILE)).graph.node
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    assert len(lstms) == 1
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in lstms[0].attribute}
    assert attributes["direction"] == b"bidirectional"
    assert len(lstms[0].input) >= 5 and lstms[0].input[4]  # sequence_lens wired
    assert not [n for n in nodes if n.op_type == "GatherElements" and n.name.startswith("/lstm")]


def test_emissions_match_torch(member) -> None:
    model_dir, dev = member
    sentences = sentences_of(dev)
    torch_side = SlotPredictor.load(model_dir, runtime="torch", batch_chars=512)
    onnx_side = SlotPredictor.load(model_dir, runtime="onnx", batch_chars=512)
    assert torch_side.runner is None and onnx_side.runner is not None
    expected, found = torch_side.emissions(sentences), onnx_side.emissions(sentences)
    assert len(expected) == len(found) == len(sentences) - 1  # the empty sentence has none
    worst = max(float(np.abs(a - b).max()) for a, b in zip(expected, found, strict=True))
    assert worst < EMISSIONS_ATOL, worst


def test_small_forward_batches_give_the_same_emissions(member) -> None:
    """A call's sentences split over many forward passes (forward_batch_chars) come out as from one pass."""
    model_dir, dev = member
    sentences = sentences_of(dev)
    one = SlotPredictor.load(model_dir, runtime="onnx", batch_chars=100_000)
    many = SlotPredictor.load(model_dir, runtime="onnx", batch_chars=100_000, forward_batch_chars=64)
    calls = []
    runner = many.runner
    many.runner = lambda *arrays: calls.append(arrays[0].shape) or runner(*arrays)
    expected, found = one.emissions(sentences), many.emissions(sentences)
    assert len(calls) > 1 and all(rows * tokens <= 64 or rows == 1 for rows, tokens in calls)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(expected, found, strict=True))
    assert worst < EMISSIONS_ATOL, worst
    assert one.decode(sentences) == many.decode(sentences)


def test_tags_and_dev_f1_are_identical(member) -> None:
    model_dir, dev = member
    sentences = sentences_of(dev)
    torch_tags = SlotPredictor.load(model_dir, runtime="torch").decode(sentences)
    onnx_tags = SlotPredictor.load(model_dir, runtime="auto").decode(sentences)  # auto: onnx on this CPU
    assert onnx_tags == torch_tags
    gold = [s.tags for s in dev]
    torch_f1, onnx_f1 = score(gold, torch_tags[: len(dev)]).f1, score(gold, onnx_tags[: len(dev)]).f1
    assert round(onnx_f1, 3) == round(torch_f1, 3)


def test_a_graph_of_other_weights_is_never_run(member, tmp_path: Path) -> None:
    model_dir, _ = member
    copy = shutil.copytree(model_dir, tmp_path / "bert")
    weights = load_file(str(copy / MODEL_FILE))
    save_file({k: v + 1.0 if v.is_floating_point() else v for k, v in weights.items()}, str(copy / MODEL_FILE))
    assert not graph_is_current(copy)
    assert resolve_runtime("auto", "cpu", "float32", read_member(copy)) == "torch"
    with pytest.raises(FileNotFoundError, match="export-onnx"):
        resolve_runtime("onnx", "cpu", "float32", read_member(copy))
    result = CliRunner().invoke(app, ["export-onnx", str(copy)])
    assert result.exit_code == 0, result.output
    assert graph_is_current(copy)


def test_onnx_runs_float32_on_the_cpu_only(member) -> None:
    model_dir, _ = member
    assert resolve_runtime("auto", "cpu", "bfloat16", read_member(model_dir)) == "torch"
    assert resolve_runtime("auto", "cuda", "float32", read_member(model_dir)) == "torch"
    assert resolve_runtime("torch", "cpu", "float32", read_member(model_dir)) == "torch"
    with pytest.raises(ValueError, match="float32 on the CPU"):
        resolve_runtime("onnx", torch.device("cpu"), "int8", read_member(model_dir))


def test_export_onnx_refuses_a_shipped_ensemble_folder(tmp_path: Path) -> None:
    (tmp_path / "ensemble.json").write_text("{}", encoding="utf-8")
    (tmp_path / "bert").mkdir()
    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "bert")])
    assert result.exit_code != 0 and "shipped ensemble" in result.output
