"""release: the production model, retrained on every labeled sentence with the evaluated run's settings fixed.

After `evaluate` nothing more is chosen: what ships (`release.source_dir`: the stack's choice, or the
student stage's), its kind, its members, their params and each member's number of epochs (its best
epoch in the evaluated run) are fixed. Each member is retrained from scratch on train + test + dev,
except what its kind needs held out: a combiner that learns from dev keeps dev out and is refit on the
retrained members' dev outputs (never cross-fitted here: that would be k x 4 more trainings); a member
alone, or a kind that learns nothing, trains on dev too.

When a student ships, so does its teacher's knowledge: the teacher that taught it (`teach.teacher`,
the one its provenance names) is retrained the same way into a release teacher, which relabels the
same unlabeled sentences (the teach stage's code, into a release silver file under release.work_dir),
and the release student trains with the same settings and seed on every labeled sentence and that
silver, for the epochs the shipped seed kept. Its provenance names the release teacher and the
release silver, as the student stage's does.

The release is never scored on test: it has seen it.
`reports/metrics.json` keeps the held-out numbers of the evaluated model (`models/ensemble`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from healthner.config import Params, deep_merge
from healthner.corpus.prepare import save_slot_vocab, slot_vocab, tokenize_split
from healthner.corpus.readers import Sentence, read_sentences, write_sentences
from healthner.ensemble.kinds import KINDS, MemberKind, make_kind
from healthner.ensemble.shipped import member_outputs, read_manifest, save_ensemble
from healthner.ensemble.stack import load_predictors
from healthner.ensemble.student import STUDENT, load_silver, provenance_of, settings, student_params
from healthner.ensemble.teach import load_teacher, teacher_record, write_silver
from healthner.errors import ModelIntegrityError
from healthner.model.train import SUMMARY_FILE, train

SPLITS = ("train", "dev", "test")
TEACHER_DIR = "teacher"  # under release.work_dir: the release teacher's shipped folder
SILVER_FILE = Path("silver") / "silver.parquet"  # under release.work_dir: the release teacher's labels
STUDENT_DIR = "student"  # under release.work_dir (its prepared windows and model) and release.reports_dir


@dataclass(frozen=True)
class ReleaseResult:
    output_dir: Path
    kind: str
    members: list[str]
    trained_on: int  # sentences
    held_out: int  # dev sentences kept out for the combiner
    model_version: str
    teacher: ReleaseResult | None = None  # a release student's release teacher

    def __str__(self) -> str:
        line = (
            f"release: {self.kind} of {', '.join(self.members)} retrained on {self.trained_on} labeled sentences "
            f"({self.held_out} held out for the combiner) -> {self.output_dir} (model_version {self.model_version})"
        )
        return line if self.teacher is None else f"{self.teacher}\n{line}, taught by that teacher"


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
    write_sentences(dev, folder / "dev.parquet")
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


def retrain_kind(params: Params, manifest: dict, split: dict[str, list[Sentence]], output_dir: Path) -> ReleaseResult:
    """The manifest's kind and members retrained on every labeled sentence (less what the combiner needs)."""
    name, members = manifest["kind"], manifest["members"]
    held_out = KINDS[name].fitted
    sentences = split["train"] + split["test"] + ([] if held_out else split["dev"])
    dev = split["dev"] if held_out else []
    cfg = params.release
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    member_dirs = {slot: retrain_member(params, slot, sentences, dev) for slot in members}
    kind = make_kind(name, members, params.stack)
    if held_out:
        retrained = load_predictors(params.with_updates(train={"output_dir": cfg.work_dir / "models"}), members)
        outputs = member_outputs(retrained, [s.chars for s in dev], averaged=kind.needs_averaged)
        kind = kind.fit(outputs, [s.tags for s in dev])
    record = {**manifest.get("selection", {}), "release": {"trained_on": len(sentences), "held_out_dev": len(dev),
                                                          "evaluated_model_version": manifest["model_version"]}}
    version = save_ensemble(output_dir, kind, member_dirs, record)
    return ReleaseResult(output_dir, name, list(members), len(sentences), len(dev), version)


def evaluated_teacher(params: Params, shipped: dict) -> dict:
    """The manifest of the teacher that taught the shipped student: teach.teacher, checked to be the
    model_version its provenance names, with the student settings it names (else the release would
    be another student than the one that was chosen)."""
    origin, folder = shipped["provenance"], params.teach.teacher
    manifest = read_manifest(folder)
    if manifest["model_version"] != origin["teacher"]["model_version"]:
        raise ModelIntegrityError(
            f"{folder}: model_version {manifest['model_version']}, but the student in {params.release.source_dir} was "
            f"taught by {origin['teacher']['model_version']}; rerun the student (dvc repro student)"
        )
    if settings(params) != origin["student"]:
        raise ModelIntegrityError(
            f"{params.release.source_dir}: its student was trained with other student settings than params' "
            f"{origin['student']}; rerun the student (dvc repro student)"
        )
    return manifest


def release_student_params(params: Params, seed: int, epochs: int) -> Params:
    """The params the release student trains with: the shipped seed's (student_params), on the release's
    prepared windows, into release.work_dir, for the epochs that seed kept (its silver epochs first)."""
    cfg, slot = params.release, params.student.slot
    base = student_params(params, seed)
    silver_first = params.student.silver_epochs if params.student.curriculum == "silver_then_gold" else 0
    gold = max(1, epochs - silver_first)
    own = {"train": {"output_dir": str(cfg.work_dir / STUDENT_DIR / "models"),
                     "reports_dir": str(cfg.reports_dir / STUDENT_DIR), "epochs": gold, "patience": gold}}
    overrides = deep_merge(base.encoders[slot].overrides, own)
    return base.with_updates(prepare={"output_dir": cfg.work_dir / STUDENT_DIR / "prepared"},
                             encoders={slot: {"overrides": overrides}})


def release_student(params: Params, shipped: dict, split: dict[str, list[Sentence]]) -> ReleaseResult:
    """A release teacher (the evaluated teacher retrained), its labels of the unlabeled sentences, and the
    release student trained on every labeled sentence and those labels, into release.output_dir."""
    cfg = params.release
    teacher_manifest = evaluated_teacher(params, shipped)
    teacher_dir = cfg.work_dir / TEACHER_DIR
    teacher = retrain_kind(params, teacher_manifest, split, teacher_dir)
    silver_path = cfg.work_dir / SILVER_FILE
    write_silver(params, load_teacher(params, teacher_dir), silver_path)
    silver = load_silver(params, silver_path)
    sentences = split["train"] + split["test"] + split["dev"]
    seed = shipped["provenance"]["seed"]
    fixed = release_student_params(params, seed, best_epoch(cfg.source_dir / STUDENT))
    write_release_split(fixed, params.student.slot, sentences, [], fixed.prepare.output_dir)
    run = train(fixed, params.student.slot, silver=silver)
    origin = {**provenance_of(params, teacher_record(teacher_dir), silver_path, silver), "seed": seed}
    record = {**shipped.get("selection", {}), "release": {"trained_on": len(sentences), "held_out_dev": 0,
                                                         "evaluated_model_version": shipped["model_version"]}}
    version = save_ensemble(cfg.output_dir, MemberKind([STUDENT]), {STUDENT: run.model_dir}, record, origin)
    return ReleaseResult(cfg.output_dir, shipped["kind"], [STUDENT], len(sentences), 0, version, teacher)


def release(params: Params) -> ReleaseResult:
    """The DVC `release` stage: what ships (release.source_dir) retrained on every labeled sentence (less what
    a combiner needs) into release.output_dir; a student that ships, as a release student of a release teacher."""
    shipped = read_manifest(params.release.source_dir)
    split = {s: read_sentences(params.prepare.output_dir / f"{s}.parquet") for s in SPLITS}
    if shipped["members"] == [STUDENT]:
        return release_student(params, shipped, split)
    return retrain_kind(params, shipped, split, params.release.output_dir)
