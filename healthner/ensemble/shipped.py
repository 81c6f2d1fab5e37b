"""The shipped model: the self-contained `models/ensemble/` folder and the `Ensemble` that tags from it.

The folder holds the member model folders it needs, what its kind learned (e.g. `forest.skops`)
and `ensemble.json`: the kind (one member alone, or a combiner, kinds.py), its members, why it was
chosen, and `model_version`, a short hash of everything that decides the output: the manifest's
model fields (kind, members, tags and the kind's own fields, e.g. context) and every file the
loaders read (the kind's file, each member's weights, config, vocabulary, labels, term list and
emissions graph: folder.MEMBER_FILES). Loading reads each of those files once, hashes those bytes
and builds the model from the same bytes, never from the disk again, so what runs is exactly what
was checked even if the folder is swapped mid-load. It refuses a folder whose hash differs (an
edited manifest, a changed file), one whose hash is not the version a caller pinned, or one whose
members are not distinct folders inside it (ModelIntegrityError); files the loaders never read (a
NOTES.txt, a training summary) and manifest keys no kind reads change nothing. `Ensemble` predicts
from raw characters: the members' outputs in one batched pass (predict.joint_outputs), then the kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sklearn
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from healthner.config import describe_errors
from healthner.corpus.labels import TAGS
from healthner.ensemble.combiner import BIO_GRAMMAR, Prediction
from healthner.ensemble.kinds import KINDS, MemberOutputs, ShippedKind
from healthner.errors import ModelIntegrityError
from healthner.io import write_json

if TYPE_CHECKING:
    from healthner.model.folder import MemberFiles
    from healthner.model.predict import SlotPredictor

VERSION_CHARS = 12  # hex characters of sha256 kept as model_version
MANIFEST_FILE = "ensemble.json"
MODEL_FIELDS = ("kind", "members", "tags")  # the manifest's fields every kind reads; kinds add their own
PROVENANCE_FIELD = "provenance"  # where a student came from (teacher, silver data, settings): hashed when present

log = logging.getLogger(__name__)


class Manifest(BaseModel):
    """ensemble.json; keys no kind reads (selection, notes) are kept but change nothing."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str = "forest"
    members: list[str] = Field(min_length=1)
    tags: list[str]
    model_version: str

    @property
    def kind_class(self) -> type[ShippedKind]:
        return KINDS[self.kind]

    def model_fields_json(self) -> bytes:
        """The fields that decide the output, canonical JSON: the common ones and the kind's own."""
        fields = self.model_dump()
        provenance = [PROVENANCE_FIELD] if fields.get(PROVENANCE_FIELD) else []
        keys = (*MODEL_FIELDS, *self.kind_class.manifest_fields, *provenance)
        return json.dumps({key: fields.get(key) for key in keys}, sort_keys=True).encode()


def member_files() -> tuple[str, ...]:
    """The files of a member folder that SlotPredictor.load may read (the rest never reach the model)."""
    from healthner.model.folder import MEMBER_FILES

    return MEMBER_FILES


def model_files(folder: Path, manifest: Manifest) -> list[str]:
    """Relative paths of every file that decides the output: the kind's files and each member's model files."""
    found = [name for name in manifest.kind_class.files() if (folder / name).is_file()]
    for slot in sorted(set(manifest.members)):
        found += [f"{slot}/{name}" for name in member_files() if (folder / slot / name).is_file()]
    return found


def read_model_files(folder: Path, manifest: Manifest) -> dict[str, bytes]:
    """Every model file's bytes by relative path, each read once: what is hashed is what gets loaded."""
    return {rel: (folder / rel).read_bytes() for rel in model_files(folder, manifest)}


def files_digest(manifest: Manifest, files: Mapping[str, bytes]) -> str:
    """Short sha256 over the manifest's model fields and each model file's relative path and bytes."""
    digest = hashlib.sha256(manifest.model_fields_json() + b"\0")
    for rel, data in files.items():
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:VERSION_CHARS]


def model_digest(folder: Path, manifest: Manifest) -> str:
    """files_digest of the folder's model files as they are on disk now."""
    return files_digest(manifest, read_model_files(folder, manifest))


def save_ensemble(
    output_dir: Path, kind: ShippedKind, member_dirs: Mapping[str, Path], selection: dict | None = None,
    provenance: dict | None = None,
) -> str:
    """Write the self-contained folder for `kind` (replacing any old one); returns its model_version.
    `provenance`: how a member was made (a student's teacher, silver data and settings), part of model_version."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    for slot in kind.members:
        shutil.copytree(member_dirs[slot], output_dir / slot)
    fields = kind.save(output_dir)
    manifest: dict[str, Any] = {
        "kind": kind.name,
        "members": kind.members,
        **fields,
        "selection": selection or {},
        "tags": list(TAGS),
        "model_version": "",
        "sklearn_version": sklearn.__version__,
        **({PROVENANCE_FIELD: provenance} if provenance else {}),
    }
    version = model_digest(output_dir, Manifest.model_validate(manifest))
    manifest["model_version"] = version
    write_json(output_dir / MANIFEST_FILE, manifest)
    return version


def _parse_manifest(path: Path) -> Manifest:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `healthner stack` (dvc repro stack) first")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, RecursionError) as exc:  # JSON errors and pydantic's ValidationError are ValueErrors
        detail = describe_errors(exc) if isinstance(exc, ValidationError) else f"not valid JSON: {exc}"
        raise ModelIntegrityError(f"{path}: {detail}") from exc
    if manifest.kind not in KINDS:
        raise ModelIntegrityError(f"{path}: unknown kind {manifest.kind!r}; expected one of {sorted(KINDS)}")
    return manifest


def check_members(folder: Path, members: list[str]) -> None:
    """Each member a distinct folder directly inside `folder` (no '..', no absolute path, no link out)."""
    if len(set(members)) != len(members):
        raise ModelIntegrityError(f"{folder / MANIFEST_FILE}: members repeat: {members}")
    root = folder.resolve()
    for slot in members:
        target = (folder / slot).resolve()
        if target.parent != root or not target.is_dir():
            raise ModelIntegrityError(f"{folder / MANIFEST_FILE}: member {slot!r} is not a folder inside {folder}")


def read_checked(folder: Path, expected_version: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the model files' bytes (by relative path), once those bytes are checked to be
    what was saved and, with `expected_version`, to be that version (ModelIntegrityError if not)."""
    path = folder / MANIFEST_FILE
    manifest = _parse_manifest(path)
    if tuple(manifest.tags) != TAGS:
        raise ModelIntegrityError(f"{path}: tag set differs from healthner.corpus.labels.TAGS")
    check_members(folder, manifest.members)
    files = read_model_files(folder, manifest)
    saved, actual = manifest.model_version, files_digest(manifest, files)
    if actual != saved:
        raise ModelIntegrityError(
            f"{folder}: model files or {MANIFEST_FILE} changed since saving (model_version {saved}, now {actual})"
        )
    if expected_version is not None and actual != expected_version:
        raise ModelIntegrityError(f"{folder}: model_version {actual}, expected the pinned {expected_version}")
    return manifest.model_dump(), files


def read_manifest(folder: Path, expected_version: str | None = None) -> dict:
    """The manifest, once the folder is checked to be what was saved (read_checked)."""
    return read_checked(folder, expected_version)[0]


def take_member(folder: Path, slot: str, files: dict[str, bytes]) -> MemberFiles:
    """One member's files (folder.MemberFiles), taken out of the checked bytes of the whole folder
    (removed from `files`, so each member's bytes are freed once it is built)."""
    from healthner.model.folder import MemberFiles

    prefix = f"{slot}/"
    own = {rel.removeprefix(prefix): files.pop(rel) for rel in list(files) if rel.startswith(prefix)}
    return MemberFiles(folder / slot, own)


def member_outputs(
    predictors: Mapping[str, SlotPredictor], sentences: list[list[str]], averaged: bool = False
) -> MemberOutputs:
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
    def load(cls, folder: Path | str, device: str = "cpu", expected_version: str | None = None,
             **predictor_options: int | str) -> Ensemble:
        """Everything from `folder` alone, built from the bytes its model_version was checked on;
        `expected_version`: refuse any other version; `predictor_options` go to SlotPredictor.load."""
        from healthner.model.predict import SlotPredictor

        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: model folder not found; run `healthner stack` (dvc repro stack) first")
        manifest, files = read_checked(folder, expected_version)
        members = manifest["members"]
        kind = KINDS[manifest["kind"]].load(folder, members, manifest, files)
        predictors = {slot: SlotPredictor.load(take_member(folder, slot, files), device=device, **predictor_options)
                      for slot in members}
        log.info("model %s: %s of %s, model_version %s", folder, manifest["kind"], members, manifest["model_version"])
        return cls(predictors, kind, manifest["model_version"])

    def outputs(self, sentences: list[list[str]]) -> MemberOutputs:
        return member_outputs(self.predictors, sentences, averaged=self.kind.needs_averaged)

    def predict(self, sentences: list[list[str]]) -> list[Prediction]:
        if not sentences:
            return []
        return self.kind.predict(self.outputs(sentences))
