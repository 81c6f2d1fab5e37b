"""release: the production model, retrained on every labeled sentence with the evaluated run's settings fixed.

After `evaluate` nothing more is chosen: the shipped kind, its members, their params and each
member's number of epochs (its best epoch in the evaluated run) are fixed. Each member is retrained
from scratch on train + test + dev, except what its kind needs held out: a combiner that learns from
dev keeps dev out and is refit on the retrained members' dev outputs (never cross-fitted here: that
would be k x 4 more trainings); a member alone, or a kind that learns nothing, trains on dev too.
The release is never scored on test: it has seen it.
`reports/metrics.json` keeps the held-out numbers of the evaluated model (`models/ensemble`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from healthner.config import Params
from healthner.corpus.prepare import save_slot_vocab, slot_vocab, tokenize_split
from healthner.corpus.readers import Sentence, read_sentences, write_sentences
from healthner.ensemble.kinds import KINDS, make_kind
from healthner.ensemble.shipped import member_outputs, read_manifest, save_ensemble
from healthner.ensemble.stack import load_predictors
from healthner.model.train import SUMMARY_FILE, train

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class ReleaseResult:
    output_dir: Path
    kind: str
    members: list[str]
    trained_on: int  # sentences
    held_out: int  # dev sentences kept out for the combiner
    model_version: str

    def __str__(self) -> str:
        return (
            f"release: {self.kind} of {', '.join(self.members)} retrained on {self.trained_on} labeled sentences "
            f"({self.held_out} held out for the combiner) -> {self.output_dir} (model_version {self.model_version})"
        )


def best_epoch(model_dir: Path) -> int:
    """The epoch the evaluated run kept for this member (its training summary)."""
    path = model_dir / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; train the evaluated models first (dvc repro train)")
    return max(1, int(json.loads(path.read_text(encoding="utf-8"))["best_epoch"]))


def write_release_split(
    params: Params, slot: str, sentences: Sequence[Sentence], dev: Sequence[Sentence], folder: Path
) -> None:
    """A prepared folder for one slot: its vocabulary from every sentence it trains on, and windows."""
    vocab = slot_vocab(params.encoders[slot], sentences, params.prepare.min_char_freq)
    save_slot_vocab(folder / slot, params.encoders[slot], vocab)
    for name, group in (("train", sentences), ("dev", dev)):
        tokenize_split(
            group, vocab, params.prepare.window_chars, params.prepare.window_overlap, folder / slot / f"{name}.parquet"
        )


def retrain_member(params: Params, slot: str, sentences: Sequence[Sentence], dev: Sequence[Sentence]) -> Path:
    """One member, retrained from scratch for the evaluated run's best number of epochs."""
    cfg = params.release
    prepared = cfg.work_dir / "prepared"
    write_release_split(params, slot, sentences, dev, prepared)
    epochs = best_epoch(params.train.output_dir / slot)
    fixed = params.with_updates(
        prepare={"output_dir": prepared},
        train={"output_dir": cfg.work_dir / "models", "reports_dir": cfg.reports_dir, "epochs": epochs, "patience": epochs},
    )
    return train(fixed, slot).model_dir


def release(params: Params) -> ReleaseResult:
    """Retrain what ships on every labeled sentence (less what the combiner needs) into release.output_dir."""
    manifest = read_manifest(params.stack.output_dir)
    name, members = manifest["kind"], manifest["members"]
    prepared = params.prepare.output_dir
    split = {s: read_sentences(prepared / f"{s}.parquet") for s in SPLITS}
    held_out = KINDS[name].fitted
    sentences = split["train"] + split["test"] + ([] if held_out else split["dev"])
    dev = split["dev"] if held_out else []
    cfg = params.release
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    write_sentences(dev, cfg.work_dir / "prepared" / "dev.parquet")
    member_dirs = {slot: retrain_member(params, slot, sentences, dev) for slot in members}
    kind = make_kind(name, members, params.stack)
    if held_out:
        retrained = load_predictors(params.with_updates(train={"output_dir": cfg.work_dir / "models"}), members)
        outputs = member_outputs(retrained, [s.chars for s in dev], averaged=kind.needs_averaged)
        kind = kind.fit(outputs, [s.tags for s in dev])
    record = {**manifest.get("selection", {}), "release": {"trained_on": len(sentences), "held_out_dev": len(dev),
                                                          "evaluated_model_version": manifest["model_version"]}}
    version = save_ensemble(cfg.output_dir, kind, member_dirs, record)
    return ReleaseResult(cfg.output_dir, name, list(members), len(sentences), len(dev), version)
