"""The model that tags is the model that was checked: every file a load reads is in model_version
(the ONNX graphs included), a load runs the bytes it hashed, and one night runs one model."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from healthner.ensemble.kinds import KINDS, ForestKind
from healthner.ensemble.shipped import MANIFEST_FILE, Ensemble, Manifest, model_files, save_ensemble
from healthner.errors import HealthnerError, ModelIntegrityError
from healthner.model.onnx_runtime import ONNX_FILE, export_member
from healthner.model.predict import SlotPredictor
from healthner.nightly.batch import tag_shard, write_tagged
from healthner.nightly.checks import CheckFailed, check_version
from healthner.nightly.day import read_shard, stage_day
from healthner.nightly.inbox import day_files
from healthner.nightly.staging import MANIFEST_FILE as STAGE_MANIFEST
from healthner.nightly.staging import version_dir_of
from healthner.nightly.tagger import Tagger
from tests.nightly.nights import ARTICLES, DAY, first_char_entity, night_params, write_inbox
from tests.tiny_models import untrained_ensemble

pytestmark = pytest.mark.reliability
SENTENCES = [list("病人頭痛發燒三天，醫生開了維生素。"), list("咳嗽")]
_OPENED: list[str] | None = None  # while set, every file this process opens (an audit hook cannot be removed)


def _record_opens(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], str | Path):
        _OPENED.append(str(args[0]))


sys.addaudithook(_record_opens)


@pytest.fixture(scope="module")
def onnx_ensemble(tmp_path_factory) -> Path:
    """A random ensemble whose members carry their emissions graphs (CPU tagging runs them)."""
    root = tmp_path_factory.mktemp("onnx_ensemble")
    folder = untrained_ensemble(root)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    members = {slot: root / "members" / slot for slot in manifest["members"]}
    for member in members.values():
        export_member(member, SlotPredictor.load(member).model)
    kind = KINDS[manifest["kind"]].load(folder, manifest["members"], manifest)
    save_ensemble(folder, kind, members)
    return folder


def negate_emissions(graph_path: Path) -> None:
    """Every float weight of the graph negated, its metadata (the weights' sha256 stamp) kept as it was."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(graph_path))
    values = {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}
    for init in graph.graph.initializer:
        if values[init.name].dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(-values[init.name], init.name))
    graph_path.write_bytes(graph.SerializeToString())


def test_an_edited_emissions_graph_is_refused(onnx_ensemble: Path, tmp_path: Path) -> None:
    """On the CPU the graph computes the output, so it is part of model_version like the weights."""
    copy = shutil.copytree(onnx_ensemble, tmp_path / "model")
    assert Tagger.load(copy).ensemble.predictors["bert"].runner is not None  # auto runs the graph here
    negate_emissions(copy / "bert" / ONNX_FILE)
    with pytest.raises(ModelIntegrityError, match="changed since saving"):
        Ensemble.load(copy)


def test_a_load_opens_each_model_file_once_and_every_file_it_opens_is_hashed(onnx_ensemble: Path) -> None:
    global _OPENED
    _OPENED = []
    try:
        Tagger.load(onnx_ensemble)
        opened = Counter(Path(p).resolve() for p in _OPENED if Path(p).resolve().is_relative_to(onnx_ensemble.resolve()))
    finally:
        _OPENED = None
    manifest = Manifest.model_validate(json.loads((onnx_ensemble / MANIFEST_FILE).read_text(encoding="utf-8")))
    hashed = {(onnx_ensemble / rel).resolve() for rel in model_files(onnx_ensemble, manifest)}
    assert {path for path in hashed if path.name == ONNX_FILE}  # the graphs are among them
    assert set(opened) - {(onnx_ensemble / MANIFEST_FILE).resolve()} <= hashed
    assert all(count == 1 for path, count in opened.items() if path in hashed), opened


def test_a_folder_swapped_after_the_check_is_not_what_runs(onnx_ensemble: Path, tmp_path: Path, monkeypatch) -> None:
    """The weights on disk change between the digest check and the members' loading (here: while the
    kind loads, which comes between them): the loaded members are still the checked ones."""
    copy = shutil.copytree(onnx_ensemble, tmp_path / "model")
    checked = Ensemble.load(copy, runtime="torch")
    expected = checked.predictors["bert"].emissions(SENTENCES)
    weights = copy / "bert" / "model.safetensors"
    original = ForestKind.load

    def swap_then_load(cls, *args, **kwargs):
        tensors = load_file(str(weights))
        save_file({k: v + 1.0 if v.is_floating_point() else v for k, v in tensors.items()}, str(weights))
        return original(*args, **kwargs)

    monkeypatch.setattr(ForestKind, "load", classmethod(swap_then_load))
    loaded = Ensemble.load(copy, runtime="torch")
    assert loaded.model_version == checked.model_version
    for got, want in zip(loaded.predictors["bert"].emissions(SENTENCES), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_night_pins_its_model_at_stage(random_ensemble: Path, tmp_path: Path) -> None:
    """A model that appears after stage (a new release) never tags that night: the shard refuses it."""
    model = shutil.copytree(random_ensemble, tmp_path / "release")
    params = night_params(tmp_path, model_dir=str(model), fallback_model_dir=str(model), shards=1)
    write_inbox(tmp_path, DAY, ARTICLES)
    shards = stage_day(params, DAY, day_files(params.nightly.inbox_dir, DAY))
    staged = json.loads((Path(version_dir_of(shards[0])) / STAGE_MANIFEST).read_text(encoding="utf-8"))
    pinned = Tagger.load(model).model_version
    assert staged["model"] == {"path": str(model.absolute()), "model_version": pinned}
    shutil.rmtree(model)
    untrained_ensemble(tmp_path / "other", seed=1)
    shutil.copytree(tmp_path / "other" / "ensemble", model)  # another model at the pinned path
    with pytest.raises(HealthnerError, match=pinned) as refused:
        tag_shard(params, shards[0])
    assert "\n" not in str(refused.value)


def test_the_nights_check_expects_one_model_version(tmp_path: Path) -> None:
    params = night_params(tmp_path, shards=2)
    write_inbox(tmp_path, DAY, ARTICLES)
    shards = stage_day(params, DAY, day_files(params.nightly.inbox_dir, DAY))
    for shard, version in zip(shards, ("aaaaaaaaaaaa", "bbbbbbbbbbbb"), strict=True):
        articles = read_shard(shard)
        write_tagged(shard, [(articles, [first_char_entity(a.text) for a in articles])], version)
    with pytest.raises(CheckFailed, match="model_version"):
        check_version(params.nightly.warehouse_dir, version_dir_of(shards[0]))
