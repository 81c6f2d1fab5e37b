"""The ensemble layer's sections: teacher and student, cross-fitting, the stack and its shipping rule,
evaluation, the release and the ablation rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from healthner.sections.base import SLOTS, Count, NonNegative, Probability, Section, Seed


class TeachParams(Section):
    """The `teacher` and `teach` stages: a model folder (the teacher) labels the unlabeled sentences; its tags,
    per-character probabilities and a confidence per sentence are the student's silver data."""

    # the teacher stage writes the stack's members combined by `kind` (forced, as stack.kind forces what ships)
    # into `teacher`, the folder the teach stage runs; auto: what the shipping rule picks
    kind: Literal["auto", "member", "forest", "logistic", "vote", "mean_emissions"] = "vote"
    teacher: Path = Path("models/teacher")
    max_sentences: Count | None = None  # the first this many unlabeled sentences (a cheap profile); None: all
    # silver sentences the student leaves out: confidence (mean teacher probability of its own tags) below this
    min_confidence: Probability = 0.0
    thresholds: list[Probability] = [0.5, 0.7, 0.8, 0.9, 0.95]  # min_confidence candidates scored on dev
    batch_sentences: Count = 512  # sentences per teacher call (bounds the memory of marginals in flight)
    output: Path = Path("data/silver/silver.parquet")
    report: Path = Path("reports/teach.json")


class StudentParams(Section):
    """The `student` stage: one member trained on gold + the teacher's silver data, then the shipping rule."""

    slot: Literal["bert", "roberta", "electra", "albert"] = "bert"  # its encoder, vocabulary and slot overrides
    # the student's own values of model / train / loss, over the slot's (a cheaper architecture: model.lac off)
    overrides: dict[Literal["model", "train", "loss"], dict[str, Any]] = Field(default_factory=dict)
    silver_fraction: Probability = 1.0  # share of the confident silver sentences used (a fixed, nested sample)
    targets: Literal["hard", "soft"] = "hard"  # hard: the teacher's tags; soft: KL to its probabilities
    silver_weight: float = Field(1.0, ge=0.0)  # weight of a silver batch's loss against a gold batch's
    curriculum: Literal["mixed", "silver_then_gold"] = "mixed"
    silver_epochs: Count = 1  # silver_then_gold: epochs on silver alone before train.epochs on gold
    seeds: list[Seed] = Field([13, 14], min_length=1)  # one student per seed; the rule reads their mean
    # seeds trained at once, in processes of their own, each with train.torch_threads // workers threads
    workers: Count = 1
    output_dir: Path = Path("models/student")  # one folder per seed
    shipped_dir: Path = Path("models/shipped")  # what the rule ships once it has seen the student
    reports_dir: Path = Path("reports/student")  # the seeds' DVCLive logs
    report: Path = Path("reports/student.json")


class CrossfitParams(Section):
    """k-fold cross-fitting of the members over train (ensemble/crossfit.py): each slot is trained once
    per fold on the other folds and tags the fold it did not see, so the learned combiners fit on
    out-of-fold outputs for every train sentence instead of dev alone. 0 folds: off."""

    folds: NonNegative = 0  # 0: off; k >= 2: k trainings per slot
    epochs: Count | None = None  # per fold member (a cheaper profile); None: train.epochs
    seed: Seed = 13  # which train sentences fall in which fold
    output_dir: Path = Path("models/crossfit")
    reports_dir: Path = Path("reports/crossfit")  # the fold trainings' DVCLive logs
    report: Path = Path("reports/crossfit.json")  # per fold member: dev F1, epochs, seconds

    @model_validator(mode="after")
    def _off_or_two_folds(self) -> CrossfitParams:
        if self.folds == 1:
            raise ValueError("stack.crossfit.folds: 0 (off) or at least 2 (one fold leaves nothing to train on)")
        return self


class StackParams(Section):
    members: list[Literal["bert", "roberta", "electra", "albert"]] = list(SLOTS)
    context: NonNegative = 1
    viterbi_features: bool = False  # each member's one-hot Viterbi tags beside its marginals
    n_estimators: Count = 100
    max_depth: Count | None = None
    min_samples_leaf: Count = 5
    max_samples: float | None = Field(None, gt=0.0, le=1.0)  # bootstrap share of dev characters per tree
    cv_folds: Annotated[int, Field(strict=True, ge=2)] = 5
    seed: Seed = 13
    n_jobs: Count | Literal[-1] = 2  # -1: every core (scikit-learn)
    output_dir: Path = Path("models/ensemble")
    # The shipping rule: each kind is scored on dev (out-of-fold when it learns, mean over
    # selection_seeds); a combiner ships only if it beats the best member alone by min_gain dev F1.
    kind: Literal["auto", "member", "forest", "logistic", "vote", "mean_emissions"] = "auto"
    candidates: list[Literal["forest", "logistic", "vote", "mean_emissions"]] = [
        "forest", "logistic", "vote", "mean_emissions"
    ]
    min_gain: float = Field(0.01, ge=0.0)  # 1 F1 point: smaller gains are noise here
    selection_seeds: list[Seed] = Field([13, 14], min_length=1)
    logistic_c: float = Field(1.0, gt=0.0)  # inverse regularisation strength
    logistic_max_iter: Count = 300
    crossfit: CrossfitParams = CrossfitParams()


class EvaluateParams(Section):
    combinations: Literal["all"] | list[list[str]] = "all"
    reports_dir: Path = Path("reports")
    error_examples: NonNegative = 50


class ReleaseParams(Section):
    output_dir: Path = Path("models/release")  # the production model: what `tag` and the DAG load first
    work_dir: Path = Path("data/release")  # prepared windows and retrained members
    reports_dir: Path = Path("reports/release")  # the retrainings' DVCLive logs
    # what ships and is retrained: the stack's choice, or the student stage's (student.shipped_dir; a student
    # ships as a release student taught by a release teacher)
    source_dir: Path = Path("models/ensemble")


class AblationParams(Section):
    """The paper's Table 3 on one slot: each row is a set of params overrides, {section: {field: value}}."""

    slot: str = "bert"
    epochs: Count = 4  # per row; fewer than train.epochs so five rows fit a CPU budget
    output_dir: Path = Path("models/ablation")
    reports_dir: Path = Path("reports/ablation")
    rows: dict[str, dict[str, dict[str, Any]]] = {}
