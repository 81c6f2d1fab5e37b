"""The tagging sections: how text is tagged (tag), night after night (nightly), and how fast (bench)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from healthner.sections.base import Count, Device, NonNegative, Precision, Runtime, Section


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class TagParams(Section):
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


class NightlyParams(Section):
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


class BenchParams(Section):
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
