"""The shipped model: the self-contained `models/ensemble/` folder and the `Ensemble` that tags from it.

The folder holds the member model folders it needs, what its kind learned (e.g. `forest.skops`)
and `ensemble.json`: the kind (one member alone, or a combiner, kinds.py), its members, why it was
chosen, and `model_version`, a short hash of every other file in the folder. `Ensemble` loads it
from the folder alone and predicts from raw characters: the members' outputs in one batched pass
(predict.joint_outputs), then the kind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import sklearn

from healthner.corpus.labels import TAGS
from healthner.ensemble.combiner import BIO_GRAMMAR, Prediction
from healthner.ensemble.kinds import KINDS, MemberOutputs, ShippedKind

if TYPE_CHECKING:
    from healthner.model.predict import SlotPredictor

VERSION_CHARS = 12  # hex characters of sha256 kept as model_version
MANIFEST_FILE = "ensemble.json"


def folder_digest(folder: Path, exclude: Sequence[str] = (MANIFEST_FILE,)) -> str:
    """Short sha256 over every file's relative path and bytes (sorted), so any change shows."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in exclude:
            continue
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:VERSION_CHARS]


def save_ensemble(output_dir: Path, kind: ShippedKind, member_dirs: Mapping[str, Path], selection: dict | None = None) -> str:
    """Write the self-contained folder for `kind` (replacing any old one); returns its model_version."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    for slot in kind.members:
        shutil.copytree(member_dirs[slot], output_dir / slot)
    fields = kind.save(output_dir)
    version = folder_digest(output_dir)
    manifest = {
        "kind": kind.name,
        "members": kind.members,
        **fields,
        "selection": selection or {},
        "tags": list(TAGS),
        "model_version": version,
        "sklearn_version": sklearn.__version__,
    }
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return version


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `healthner stack` (dvc repro stack) first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if tuple(manifest["tags"]) != TAGS:
        raise ValueError(f"{path}: tag set differs from healthner.corpus.labels.TAGS")
    saved, actual = manifest["model_version"], folder_digest(folder)
    if actual != saved:
        raise ValueError(f"{folder}: files changed since saving (model_version {saved}, now {actual})")
    return manifest


def member_outputs(predictors: Mapping[str, SlotPredictor], sentences: list[list[str]], averaged: bool = False) -> MemberOutputs:
    """Each member's CRF marginals and Viterbi tags from one encoder pass each, and with `averaged`
    the CRF over their mean emissions (strict BIO)."""
    from healthner.model.predict import averaged_outputs, joint_outputs

    marginals, paths = joint_outputs(list(predictors.values()), sentences, paths=True)
    mean = averaged_outputs(list(predictors.values()), sentences, BIO_GRAMMAR) if averaged else None
    return MemberOutputs(dict(zip(predictors, marginals, strict=True)), dict(zip(predictors, paths, strict=True)), mean)


class Ensemble:
    """The shipped tagger, loaded from its folder alone: members and the kind that combines them."""

    def __init__(self, predictors: Mapping[str, SlotPredictor], kind: ShippedKind, model_version: str) -> None:
        self.predictors = dict(predictors)
        self.members = list(predictors)
        self.kind = kind
        self.model_version = model_version

    @classmethod
    def load(cls, folder: Path | str, device: str = "cpu", **predictor_options: int | str) -> Ensemble:
        """Everything from `folder` alone; `predictor_options` go to SlotPredictor.load (batch_chars, precision)."""
        from healthner.model.predict import SlotPredictor

        folder = Path(folder)
        manifest = read_manifest(folder)
        members = manifest["members"]
        predictors = {slot: SlotPredictor.load(folder / slot, device=device, **predictor_options) for slot in members}
        kind = KINDS[manifest.get("kind", "forest")].load(folder, members, manifest)
        return cls(predictors, kind, manifest["model_version"])

    def outputs(self, sentences: list[list[str]]) -> MemberOutputs:
        return member_outputs(self.predictors, sentences, averaged=self.kind.needs_averaged)

    def predict(self, sentences: list[list[str]]) -> list[Prediction]:
        if not sentences:
            return []
        return self.kind.predict(self.outputs(sentences))
