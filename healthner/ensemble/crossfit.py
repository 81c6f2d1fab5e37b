"""crossfit: k-fold cross-fitting of the members over the train split, for the combiners that learn.

Fit on dev alone, a learned combiner sees 680 sentences, where INST and TIME have a few dozen
entities. Cross-fitting gives it every train sentence: train is cut into `stack.crossfit.folds`
folds, each slot is trained once per fold on the other folds (`<output_dir>/fold<k>/<slot>`,
early-stopped on dev like the full member) and later tags the fold it never saw (stack step). The
stack step fits the learned candidates on those out-of-fold outputs and scores them on dev, which
the full members tag and no combiner has seen.

With 0 folds (the default profile: k x 4 more trainings do not fit its time budget) the step only
records that it is off, so the stack step's inputs are the same either way.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.errors import ConfigError
from healthner.io import write_json
from healthner.model.train import SUMMARY_FILE, train

FOLDS_FILE = "folds.json"
TRAIN_SPLIT = "train.parquet"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldMember:
    """One slot trained on every fold but `fold`."""

    slot: str
    fold: int
    dev_f1: float
    best_epoch: int
    seconds: float


@dataclass
class CrossfitResult:
    folds: int
    sentences: int
    seconds: float = 0.0
    members: list[FoldMember] = field(default_factory=list)
    full_dev_f1: dict[str, float | None] = field(default_factory=dict)  # the full members', for comparison

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if not self.folds:
            return "crossfit: off (stack.crossfit.folds is 0); the learned combiners fit on dev"
        per_slot = ", ".join(
            f"{slot} {np.mean([m.dev_f1 for m in self.members if m.slot == slot]):.4f}"
            + ("" if full is None else f" (full {full:.4f})")
            for slot, full in self.full_dev_f1.items()
        )
        return (f"crossfit: {self.folds} folds of {self.sentences} train sentences, {len(self.members)} trainings in "
                f"{self.seconds:.0f} s; mean fold dev F1 {per_slot}")


def assign_folds(sent_ids: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """The train sentences cut into `folds` seeded, near-equal, disjoint folds (each in corpus order)."""
    order = np.random.default_rng(seed).permutation(len(sent_ids))
    return [[sent_ids[i] for i in sorted(part.tolist())] for part in np.array_split(order, folds)]


def fold_params(params: Params, fold: int) -> Params:
    """The params a fold member trains with: its own output folders, the profile's epochs, no ONNX export."""
    cfg = params.stack.crossfit
    return params.with_updates(train={
        "output_dir": str(cfg.output_dir / f"fold{fold}"),
        "reports_dir": str(cfg.reports_dir / f"fold{fold}"),
        "epochs": cfg.epochs or params.train.epochs,
        "export_onnx": False,  # tagged once, by the stack step, in torch
    })


def read_folds(params: Params) -> list[list[str]]:
    """The folds the crossfit step trained on (sent_ids), checked against params."""
    cfg = params.stack.crossfit
    path = cfg.output_dir / FOLDS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run the crossfit step first (dvc repro crossfit)")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("folds") != cfg.folds:
        raise ConfigError(f"{path}: {record.get('folds')} folds trained, stack.crossfit.folds is {cfg.folds}; "
                          "run the crossfit step again (dvc repro crossfit)")
    return record.get("sent_ids", [])


def crossfit(params: Params) -> CrossfitResult:
    """Train every stack member once per fold on the other folds (nothing when folds is 0)."""
    cfg, members = params.stack.crossfit, list(params.stack.members)
    shutil.rmtree(cfg.output_dir, ignore_errors=True)
    cfg.output_dir.mkdir(parents=True)
    if not cfg.folds:
        write_json(cfg.output_dir / FOLDS_FILE, {"folds": 0})
        return _report(params, CrossfitResult(0, 0))
    sent_ids = [s.sent_id for s in read_sentences(params.prepare.output_dir / TRAIN_SPLIT)]
    folds = assign_folds(sent_ids, cfg.folds, cfg.seed)
    result = CrossfitResult(cfg.folds, len(sent_ids), full_dev_f1={slot: _full_dev_f1(params, slot) for slot in members})
    started = time.perf_counter()
    for k, held_out in enumerate(folds):
        for slot in members:
            trained = train(fold_params(params, k), slot, frozenset(held_out))
            log.info("crossfit: fold %d/%d %s", k + 1, cfg.folds, trained)
            result.members.append(FoldMember(slot, k, trained.best_dev_f1, trained.best_epoch, trained.seconds))
    result.seconds = time.perf_counter() - started
    write_json(cfg.output_dir / FOLDS_FILE, {"folds": cfg.folds, "seed": cfg.seed, "sent_ids": folds})
    return _report(params, result)


def _full_dev_f1(params: Params, slot: str) -> float | None:
    """The full member's best dev F1 (its training summary), when it has been trained."""
    path = params.train.output_dir / slot / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8"))["best_dev_f1"] if path.is_file() else None


def _report(params: Params, result: CrossfitResult) -> CrossfitResult:
    write_json(params.stack.crossfit.report, result.as_dict())
    return result
