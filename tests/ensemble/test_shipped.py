"""The shipped ensemble folder's integrity (issue 18.5): model_version covers everything that changes
the output, and a folder edited after saving is refused; what never reaches the model is ignored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from healthner.ensemble.combiner import tag_probabilities
from healthner.ensemble.kinds import FOREST_FILE, load_trusted
from healthner.ensemble.shipped import MANIFEST_FILE, Ensemble, read_manifest
from healthner.errors import ModelIntegrityError


@pytest.fixture
def folder(random_ensemble: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ensemble"
    shutil.copytree(random_ensemble, copy)
    return copy


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")


EDITS: dict[str, Callable[[Path], None]] = {
    "context 0 -> 1": lambda f: edit_manifest(f, context=1),
    "viterbi_features on": lambda f: edit_manifest(f, viterbi_features=True),
    "members repeated": lambda f: edit_manifest(f, members=["bert", "bert"]),
    "members swapped": lambda f: edit_manifest(f, members=["albert", "bert"]),
    "member outside the folder": lambda f: edit_manifest(f, members=["../ensemble/bert", "albert"]),
    "member by absolute path": lambda f: edit_manifest(f, members=[str(f / "bert"), "albert"]),
    "context not a number": lambda f: edit_manifest(f, context=True),
    "another kind": lambda f: edit_manifest(f, kind="logistic"),
    "an unknown kind": lambda f: edit_manifest(f, kind="magic"),
    "manifest not JSON": lambda f: (f / MANIFEST_FILE).write_text("{", encoding="utf-8"),
    "manifest nested too deep": lambda f: (f / MANIFEST_FILE).write_text("[" * 100_000 + "]" * 100_000),
    "a member's weights": lambda f: (f / "bert" / "model.safetensors").write_bytes(
        (f / "bert" / "model.safetensors").read_bytes() + b" "),
    "a member's vocabulary": lambda f: (f / "albert" / "vocab.txt").write_text("x\n", encoding="utf-8"),
    "the forest": lambda f: (f / FOREST_FILE).write_bytes((f / FOREST_FILE).read_bytes() + b"\0"),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_an_edit_that_could_change_the_output_is_refused(folder: Path, edit: str) -> None:
    EDITS[edit](folder)
    with pytest.raises(ModelIntegrityError):
        Ensemble.load(folder)


def test_an_edit_with_a_recomputed_version_changes_the_version(folder: Path) -> None:
    """Even someone who re-hashes an edited manifest cannot keep the old model_version."""
    from healthner.ensemble.shipped import Manifest, model_digest

    before = read_manifest(folder)["model_version"]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["context"] = 1
    manifest["model_version"] = model_digest(folder, Manifest.model_validate(manifest))
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    assert manifest["model_version"] != before
    with pytest.raises(ModelIntegrityError, match="features"):  # and the forest's feature count gives it away
        Ensemble.load(folder)


def test_files_that_never_reach_the_model_change_nothing(folder: Path) -> None:
    before = read_manifest(folder)["model_version"]
    (folder / "NOTES.txt").write_text("trained on the night shift\n", encoding="utf-8")
    (folder / "bert" / "train_summary.json").write_text("{}", encoding="utf-8")
    edit_manifest(folder, note="shipped to ward 7")  # a key the model never reads
    ensemble = Ensemble.load(folder)
    assert ensemble.model_version == before
    assert len(ensemble.predict([list("頭痛")])[0].tags) == 2


def test_a_missing_folder_or_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        Ensemble.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ensemble.json: not found"):
        Ensemble.load(tmp_path / "empty")


def test_the_forest_refuses_features_of_the_wrong_width(random_ensemble: Path) -> None:
    forest = load_trusted(random_ensemble / FOREST_FILE)
    width = forest.n_features_in_
    assert tag_probabilities(forest, np.zeros((3, width), np.float32)).shape == (3, 21)
    for wrong in (width // 2, width + 1, 506):
        with pytest.raises(ValueError, match=f"takes {width} features"):
            tag_probabilities(forest, np.zeros((3, wrong), np.float32))


def test_a_vote_folder_covers_its_own_fields(random_ensemble: Path, tmp_path: Path) -> None:
    from healthner.ensemble.kinds import VoteKind
    from healthner.ensemble.shipped import save_ensemble

    folder = tmp_path / "vote"
    save_ensemble(folder, VoteKind(["bert", "albert"], 1), {slot: random_ensemble / slot for slot in ("bert", "albert")})
    assert Ensemble.load(folder).kind.min_votes == 1
    edit_manifest(folder, min_votes=2)
    with pytest.raises(ModelIntegrityError, match="changed since saving"):
        Ensemble.load(folder)
