"""The shipped ensemble: the self-contained `models/ensemble/` folder and the tagger that loads it.

The folder holds the member model folders, `forest.skops` and `ensemble.json`, whose
`model_version` is a short hash of every other file in the folder. `Ensemble` loads it from the
folder alone and predicts from raw characters: every member's marginals and Viterbi paths in one
batched pass (predict.joint_outputs), then the forest and its BIO decode (stack).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import sklearn
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier

from healthner.corpus.labels import TAGS
from healthner.ensemble.combiner import Marginals, Paths, Prediction, forest_inputs, predict_stack

if TYPE_CHECKING:
    from healthner.model.predict import SlotPredictor

VERSION_CHARS = 12  # hex characters of sha256 kept as model_version
FOREST_FILE = "forest.skops"
MANIFEST_FILE = "ensemble.json"

# Written out by hand, never computed from the file: these are the only types forest.skops may hold
# beyond skops' own defaults (builtins, numpy arrays and dtypes).
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)


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


def dump_forest(forest: RandomForestClassifier, path: Path) -> None:
    sio.dump(forest, path)


def load_forest(path: Path) -> RandomForestClassifier:
    """Load with the hand-written trust list; anything else in the file is refused by skops."""
    forest = sio.load(path, trusted=list(TRUSTED_TYPES))
    if not isinstance(forest, RandomForestClassifier):
        raise TypeError(f"{path}: expected a RandomForestClassifier, found {type(forest).__name__}")
    return forest


def save_ensemble(
    output_dir: Path,
    forest: RandomForestClassifier,
    member_dirs: Mapping[str, Path],
    context: int,
    viterbi_features: bool = False,
) -> str:
    """Write the self-contained ensemble folder (replacing any old one); returns its model_version."""
    if output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    for slot, src in member_dirs.items():
        shutil.copytree(src, output_dir / slot)
    dump_forest(forest, output_dir / FOREST_FILE)
    version = folder_digest(output_dir)
    manifest = {
        "members": list(member_dirs),
        "context": context,
        "viterbi_features": viterbi_features,
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


def member_outputs(
    predictors: Mapping[str, SlotPredictor], sentences: list[list[str]], viterbi: bool
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[list[str]]] | None]:
    """Each member's CRF marginals and (with `viterbi`) Viterbi tags, from one encoder pass each."""
    from healthner.model.predict import joint_outputs

    marginals, paths = joint_outputs(list(predictors.values()), sentences, paths=viterbi)
    return dict(zip(predictors, marginals, strict=True)), None if paths is None else dict(zip(predictors, paths, strict=True))


class Ensemble:
    """The stacked tagger, loaded from its folder alone."""

    def __init__(
        self,
        predictors: Mapping[str, SlotPredictor],
        forest: RandomForestClassifier,
        context: int,
        model_version: str,
        viterbi_features: bool = False,
    ) -> None:
        self.predictors = dict(predictors)
        self.members = list(predictors)
        self.forest = forest
        self.context = context
        self.model_version = model_version
        self.viterbi_features = viterbi_features

    @classmethod
    def load(cls, folder: Path | str, device: str = "cpu", **predictor_options: int | str) -> Ensemble:
        """Everything from `folder` alone; `predictor_options` go to SlotPredictor.load (batch_chars, precision)."""
        from healthner.model.predict import SlotPredictor

        folder = Path(folder)
        manifest = read_manifest(folder)
        predictors = {
            slot: SlotPredictor.load(folder / slot, device=device, **predictor_options) for slot in manifest["members"]
        }
        forest, viterbi = load_forest(folder / FOREST_FILE), manifest.get("viterbi_features", False)
        return cls(predictors, forest, manifest["context"], manifest["model_version"], viterbi)

    def predict_from_marginals(self, marginals: Marginals, paths: Paths | None = None) -> list[Prediction]:
        inputs, order = forest_inputs(marginals, paths, self.members, self.viterbi_features)
        return predict_stack(self.forest, inputs, order, self.context, forest_threads())

    def predict(self, sentences: list[list[str]]) -> list[Prediction]:
        if not sentences:
            return []
        return self.predict_from_marginals(*member_outputs(self.predictors, sentences, self.viterbi_features))


def forest_threads() -> int:
    """Threads for the forest when tagging: as many as torch uses in this process (tag.torch_threads),
    so parallel tagging processes that each take their share of the cores keep to it."""
    import torch

    return torch.get_num_threads()
