"""Batch tagging: shards of a staged day tagged into Parquet parts, and the sample night's inbox.

The nightly DAG calls, in order: `day_files` -> `stage.stage_day` (read + rejects + shards + the
pinned model) -> `tag_shard` per shard (mapped) -> `checks.check_version` -> `publish.publish_day` (nightly/night.py
holds the DAG's task bodies).
The CLI's `healthner tag` of files is nightly/tag_files.py.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.config import Params
from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import ModelIntegrityError
from healthner.io import json_line
from healthner.nightly.day import pinned_model, read_shard
from healthner.nightly.inbox import (
    Article,
    day_files,
    read_inbox_file,
)
from healthner.nightly.outputs import entity_rows
from healthner.nightly.pool import worker_params
from healthner.nightly.staging import version_dir_of
from healthner.nightly.tagger import Entity, Tagger
from healthner.nightly.warehouse import (
    ARTICLE_META,
    ARTICLES_SCHEMA,
    ENTITIES_SCHEMA,
    STATUS_TAGGED,
    TYPE_COUNT_COLUMNS,
    open_root,
)
from healthner.sections.tagging import TagParams

__all__ = ["build_sample_inbox", "day_files", "read_inbox_file", "tag_shard"]

SAMPLE_FILE = "articles-000.jsonl"
SAMPLE_JOIN = "\n"  # sentences of a sample article, one a line: the tagger cuts at newlines

log = logging.getLogger(__name__)


def resolve_paths(params: Params, root: Path) -> Params:
    """Relative local nightly paths taken from `root` (the repo), so tasks work from any cwd."""

    def anchored(value: str | Path) -> str:
        text = str(value)
        return text if "://" in text or Path(text).is_absolute() else str(root / text)

    nightly = params.nightly
    return params.with_updates(
        nightly={
            "inbox_dir": anchored(nightly.inbox_dir),
            "warehouse_dir": anchored(nightly.warehouse_dir),
            "model_dir": anchored(nightly.model_dir),
            "fallback_model_dir": anchored(nightly.fallback_model_dir),
        }
    )


# --- tagging --------------------------------------------------------------------------------------


def article_row(article: Article, entities: Sequence[Entity], model_version: str) -> dict:
    counts = {column: 0 for column in TYPE_COUNT_COLUMNS}
    for entity in entities:
        counts[TYPE_COUNT_COLUMNS[ENTITY_TYPES.index(entity.type)]] += 1
    meta = {key: getattr(article, key) for key in ARTICLE_META}
    return {"article_id": article.article_id, **meta, "status": STATUS_TAGGED, "characters": len(article.text),
            "n_entities": len(entities), **counts, "model_version": model_version}


def chunks(items: Sequence[Article], size: int) -> Iterator[Sequence[Article]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ShardResult:
    shard: str
    articles: int
    entities: int
    model_version: str


def write_tagged(
    shard_path: str, tagged: Iterable[tuple[Sequence[Article], list[list[Entity]]]], model_version: str
) -> ShardResult:
    """Write (articles, their entities) chunks as the shard's `entities/` and `articles/` parts in
    its version folder, one row group per chunk. A retry rewrites the same part files."""
    fs, local = open_root(shard_path)
    staging = version_dir_of(local)
    name = local.rsplit("/", 1)[-1].replace("shard-", "part-")
    for dataset in ("entities", "articles"):
        fs.makedirs(f"{staging}/{dataset}", exist_ok=True)
    n_articles = n_entities = 0
    with (
        pq.ParquetWriter(f"{staging}/entities/{name}", ENTITIES_SCHEMA, filesystem=fs) as ents,
        pq.ParquetWriter(f"{staging}/articles/{name}", ARTICLES_SCHEMA, filesystem=fs) as arts,
    ):
        for articles, found in tagged:
            pairs = list(zip(articles, found, strict=True))
            rows = [row for a, es in pairs for row in entity_rows(a.article_id, es, model_version)]
            ents.write_table(pa.Table.from_pylist(rows, schema=ENTITIES_SCHEMA))
            arts.write_table(pa.Table.from_pylist([article_row(a, es, model_version) for a, es in pairs],
                                                  schema=ARTICLES_SCHEMA))
            n_articles += len(pairs)
            n_entities += len(rows)
    return ShardResult(shard_path, n_articles, n_entities, model_version)


def shard_tag_params(params: Params) -> TagParams:
    """One shard task's tag settings: its threads are its share of this machine's usable cores among the
    tag tasks running on it at once (nightly.tag_slots; TagParams.threads_for), since k tasks each taking
    every core tag slower together than one alone (make bench)."""
    return worker_params(params.tag, params.nightly.tag_slots)  # a shard task is one of those processes


def tag_shard(params: Params, shard_path: str, tagger: Tagger | None = None) -> ShardResult:
    """Tag one shard, `chunk_articles` at a time (memory stays bounded), into its staging parts; the
    model pinned at stage (pinned_model: that folder at that model_version, or ModelIntegrityError) on
    tag.device with shard_tag_params' threads."""
    model_dir, pinned = pinned_model(shard_path)
    tagger = tagger or Tagger.load(model_dir, shard_tag_params(params), expected_version=pinned)
    if tagger.model_version != pinned:
        raise ModelIntegrityError(f"{shard_path}: model_version {tagger.model_version}, the night pinned {pinned}")
    articles = read_shard(shard_path)
    size = params.nightly.chunk_articles
    started = time.perf_counter()
    log.info("tag %s: %d article(s), %d character(s), model %s", shard_path, len(articles),
             sum(len(a.text) for a in articles), tagger.model_version)

    def tagged() -> Iterator[tuple[Sequence[Article], list[list[Entity]]]]:
        for number, chunk in enumerate(chunks(articles, size), start=1):
            yield chunk, tagger.tag([a.text for a in chunk])
            log.info("tag %s: chunk %d/%d, %d article(s) in %.1f s", shard_path.rsplit("/", 1)[-1], number,
                     math.ceil(len(articles) / size), min(number * size, len(articles)), time.perf_counter() - started)

    result = write_tagged(shard_path, tagged(), tagger.model_version)
    log.info("tag %s: %d entities in %.1f s", shard_path, result.entities, time.perf_counter() - started)
    return result


# --- a sample night -------------------------------------------------------------------------------


def sample_articles(sentences: Sequence, count: int, published_at: str) -> list[dict]:
    """Up to `count` article records of consecutive sentences of one source each (never across sources)."""
    per_article = max(1, math.ceil(len(sentences) / max(count, 1)))
    by_source: dict[str, list] = {}
    for sentence in sentences:
        by_source.setdefault(sentence.source, []).append(sentence)
    records = []
    for source, group in by_source.items():
        for start in range(0, len(group), per_article):
            part = group[start : start + per_article]
            records.append({"article_id": f"{Path(source).stem}-{start // per_article:05d}", "source": source,
                            "title": part[0].text[:30], "published_at": published_at,
                            "text": SAMPLE_JOIN.join(s.text for s in part)})
    return records[:count]


def build_sample_inbox(params: Params) -> str:
    """`<inbox>/dt=<sample_date>/articles-000.jsonl` from the held-out TEST split only."""
    from healthner.corpus.readers import read_sentences

    nightly = params.nightly
    sentences = read_sentences(params.prepare.output_dir / "test.parquet")
    records = sample_articles(sentences, nightly.sample_articles, nightly.sample_date)
    return write_inbox_day(nightly.inbox_dir, nightly.sample_date, records)


def write_inbox_day(inbox_dir: str, dt: str, records: Sequence[dict]) -> str:
    """`<inbox>/dt=<dt>/articles-000.jsonl` holding `records`, one JSON object a line (any fsspec URL)."""
    fs, root = open_root(inbox_dir)
    path = f"{root}/dt={dt}/{SAMPLE_FILE}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json_line(r) for r in records)
    return path
