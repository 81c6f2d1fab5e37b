"""student: one member trained on gold + a teacher's silver labels, then the shipping rule sees it.

The student is the slot `student.slot` (its encoder, prepared vocabulary and slot overrides) with
`student.overrides` over them (a cheaper architecture), trained once per seed in `student.seeds` on
the training split plus the confident share of data/silver (model/silver.py, model/train.py).
Each seed's dev F1 is its own CRF decode of dev, as a member's is.

The shipping rule (shipping.choose) then runs again with the student beside the members: the
members' and the combiners' dev scores are those the stack recorded in `stack.output_dir`'s
ensemble.json, the student's the mean of its seeds. If the student is the best single model and no
combiner beats it by `stack.min_gain`, its best seed ships alone in `student.shipped_dir`, with
its provenance (the teacher, the silver data's sources, size and sha256, and every student setting)
in ensemble.json and in model_version. Otherwise what the stack shipped is copied there unchanged
(same model_version), its selection record extended with the student's scores.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from healthner.config import Params, deep_merge
from healthner.ensemble.kinds import MemberKind
from healthner.ensemble.shipped import MANIFEST_FILE, read_manifest, save_ensemble
from healthner.ensemble.shipping import Choice, KindScore, choose, scores_from_record, selection_record
from healthner.io import write_json
from healthner.model.scoring import score_model
from healthner.model.silver import SilverSet
from healthner.model.train import TrainResult, train

STUDENT = "student"  # the student's name among the candidates and its folder in the shipped model
TEST_SPLIT = "test"
BEST_DIR = "best"  # under student.output_dir: the best seed as a folder `healthner tag` and `make bench` load


@dataclass
class StudentReport:
    silver: dict  # what the student read: counts, sources, sha256
    seeds: dict[str, dict]  # seed -> dev F1, best epoch, seconds
    mean_dev_f1: float
    chosen: dict  # the shipping rule's choice with the student among the candidates
    shipped_dir: str
    model_version: str
    test: dict | None = None  # the shipped student's test scores (scored once, after the choice); None: not shipped

    def __str__(self) -> str:
        seeds = f"mean of {len(self.seeds)} seeds" if len(self.seeds) > 1 else "1 seed"
        return (f"student: dev F1 {self.mean_dev_f1:.4f} ({seeds}, {self.silver['sentences']:,} "
                f"silver sentences); ships {self.chosen['kind']} of {', '.join(self.chosen['members'])} "
                f"({self.chosen['reason']}) -> {self.shipped_dir} (model_version {self.model_version})")


def student_params(params: Params, seed: int) -> Params:
    """The params one student seed trains with: the slot's overrides, the student's over them, its seed and
    folders (set as slot overrides, so train's own merge of the slot's overrides keeps them)."""
    cfg = params.student
    own = {"train": {"seed": seed, "output_dir": str(cfg.output_dir / f"seed-{seed}"),
                     "reports_dir": str(cfg.reports_dir / f"seed-{seed}")}}
    overrides = deep_merge(deep_merge(params.encoders[cfg.slot].overrides, cfg.overrides), own)
    return params.with_updates(encoders={cfg.slot: {"overrides": overrides}})


def train_seed(params: Params, seed: int, silver: SilverSet) -> TrainResult:
    """One student seed (student_params), trained on gold + `silver`."""
    return train(student_params(params, seed), params.student.slot, silver=silver)


def train_seeds(params: Params, silver: SilverSet) -> dict[int, TrainResult]:
    """Every seed's student: one after the other, or `student.workers` at once in processes of their own, the
    torch threads shared out between them. Parallel processes, because one training step of these small models
    keeps fewer than two cores busy: two seeds side by side finish sooner than one after the other."""
    seeds, workers = params.student.seeds, min(params.student.workers, len(params.student.seeds))
    if workers <= 1:
        return {seed: train_seed(params, seed, silver) for seed in seeds}
    shared = params.with_updates(train={"torch_threads": max(1, params.train.torch_threads // workers)})
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {seed: pool.submit(train_seed, shared, seed, silver) for seed in seeds}
        return {seed: future.result() for seed, future in futures.items()}


def load_silver(params: Params, path: Path) -> SilverSet:
    """The silver sentences a student reads from `path`: the confident share, with probabilities for soft targets."""
    cfg = params.student
    return SilverSet.load(path, params.teach.min_confidence, cfg.silver_fraction, cfg.targets == "soft")


def settings(params: Params) -> dict:
    """The student settings that decide what it learns (not where it is written)."""
    return params.student.model_dump(mode="json", exclude={"output_dir", "shipped_dir", "reports_dir", "report"})


def provenance_of(params: Params, teacher: dict, silver_path: Path, silver: SilverSet) -> dict:
    """A student's provenance: its teacher (teach.teacher_record), the silver data it read, its settings."""
    data = {"path": str(silver_path), "sha256": hashlib.sha256(silver_path.read_bytes()).hexdigest(),
            "sources": silver.sources, "sentences": len(silver), "min_confidence": params.teach.min_confidence}
    return {"teacher": teacher, "silver": data, "student": settings(params)}


def provenance(params: Params, silver: SilverSet) -> dict:
    """Where the student comes from: the teacher (as the teach stage recorded it), the silver data, the settings."""
    teach_report = params.teach.report
    if not teach_report.is_file():
        raise FileNotFoundError(f"{teach_report}: not found; run the teach stage first (dvc repro teach)")
    teacher = json.loads(teach_report.read_text(encoding="utf-8"))["teacher"]
    return provenance_of(params, teacher, params.teach.output, silver)


def best_seed(runs: dict[int, TrainResult]) -> int:
    """The seed whose student ships when the student does (and is kept as student.output_dir/best): best dev F1."""
    return max(runs, key=lambda seed: runs[seed].best_dev_f1)


def ship(params: Params, runs: dict[int, TrainResult], origin: dict) -> tuple[Choice, str]:
    """The shipping rule with the student among the candidates; writes student.shipped_dir, and the best
    seed as a taggable folder (student.output_dir/best) whether it ships or not, so it can be tagged
    with and timed beside what ships."""
    stacked, shipped = params.stack.output_dir, params.student.shipped_dir
    manifest = read_manifest(stacked)
    members_f1, candidates = scores_from_record(manifest["selection"])
    student = KindScore([run.best_dev_f1 for run in runs.values()])
    choice = choose(members_f1, candidates, params.stack, {STUDENT: student})
    record = selection_record(members_f1, candidates, choice, manifest["selection"].get("fit_on", "dev"))
    record["students_dev_f1"] = {STUDENT: student.as_dict()}
    seed = best_seed(runs)
    best = save_ensemble(params.student.output_dir / BEST_DIR, MemberKind([STUDENT]), {STUDENT: runs[seed].model_dir},
                         record, {**origin, "seed": seed})
    if choice.members == [STUDENT]:
        if shipped.exists():
            shutil.rmtree(shipped)
        shutil.copytree(params.student.output_dir / BEST_DIR, shipped)
        return choice, best
    if (choice.kind, choice.members) != (manifest["kind"], manifest["members"]):
        raise AssertionError(f"the rule chose {choice.kind} of {choice.members}, not the stack's {manifest['kind']}")
    if shipped.exists():
        shutil.rmtree(shipped)
    shutil.copytree(stacked, shipped)
    written = json.loads((shipped / MANIFEST_FILE).read_text(encoding="utf-8"))
    written["selection"] = record  # not part of model_version: the model is the stack's, unchanged
    write_json(shipped / MANIFEST_FILE, written)
    return choice, manifest["model_version"]


def shipped_test_scores(params: Params, choice: Choice, runs: dict[int, TrainResult]) -> dict | None:
    """The test scores of the student the rule ships (its best seed), else None: what ships is scored on test
    once, after the choice, which dev alone made (the evaluate stage scores what the stack shipped)."""
    if choice.members != [STUDENT]:
        return None
    return score_model(params, runs[best_seed(runs)].model_dir, TEST_SPLIT)


def train_student(params: Params) -> StudentReport:
    """The DVC `student` stage: a student per seed on gold + silver, then the shipping rule over all candidates."""
    cfg = params.student
    silver = load_silver(params, params.teach.output)
    runs = train_seeds(params, silver)
    origin = provenance(params, silver)
    choice, version = ship(params, runs, origin)
    counts = {"read": silver.read, "below_confidence": silver.below_confidence,
              "outside_fraction": silver.outside_fraction, "sentences": len(silver)}
    seeds = {str(seed): {"dev_f1": r.best_dev_f1, "best_epoch": r.best_epoch, "seconds": r.seconds,
                         "model_dir": str(r.model_dir)} for seed, r in runs.items()}
    report = StudentReport({**origin["silver"], **counts}, seeds, KindScore([r.best_dev_f1 for r in runs.values()]).mean,
                           choice.as_dict(), str(cfg.shipped_dir), version, shipped_test_scores(params, choice, runs))
    write_json(cfg.report, asdict(report))
    return report
