"""Batch tagging: a day's inbox staged into shards, shards tagged into Parquet parts.

The nightly DAG calls, in order: `day_files` -> `stage_day` (read + rejects + shards) ->
`tag_shard` per shard (mapped) -> `checks.check_version` -> `publish.publish_day` (nightly/night.py
holds the DAG's task bodies).
The CLI's `healthner tag` of files is nightly/tag_files.py.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.config import NightlyParams, Params, TagParams
from healthner.corpus.labels import ENTITY_TYPES
from healthner.nightly.inbox import (
    Article,
    InboxRead,
    Reject,
    day_files,
    read_inbox,
    read_inbox_file,
)
from healthner.nightly.outputs import entity_rows
from healthner.nightly.pool import worker_params
from healthner.nightly.tagger import Entity, Tagger
from healthner.nightly.warehouse import (
    ARTICLE_META,
    ARTICLES_SCHEMA,
    ENTITIES_SCHEMA,
    MANIFEST_FILE,
    REJECTS_SCHEMA,
    SHARDS_DIR,
    STATUS_TAGGED,
    TYPE_COUNT_COLUMNS,
    day_versions_dir,
    new_version,
    open_root,
    url_of,
    version_dir_of,
    write_json,
    write_part,
)

__all__ = ["build_sample_inbox", "day_files", "read_inbox_file", "stage_day", "tag_shard"]

SHARD_SCHEMA = pa.schema(
    [("article_id", pa.string()), ("text", pa.string()), ("location", pa.string())]
    + [(name, pa.string()) for name in ARTICLE_META]
)
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


# --- staging a day --------------------------------------------------------------------------------


def rejects_table(rejects: Sequence[Reject]) -> pa.Table:
    return pa.Table.from_pylist([r._asdict() for r in rejects], schema=REJECTS_SCHEMA)


def assign_shards(articles: Sequence[Article], shards: int) -> list[list[Article]]:
    """Longest first, each to the shard with the fewest characters so far (balanced tagging time)."""
    groups: list[list[Article]] = [[] for _ in range(shards)]
    load = [0] * shards
    for article in sorted(articles, key=lambda a: len(a.text), reverse=True):
        target = load.index(min(load))
        groups[target].append(article)
        load[target] += len(article.text)
    return groups


def read_day(files: Sequence[str], max_article_chars: int, max_id_chars: int = NightlyParams().max_article_id_chars) -> InboxRead:
    """Every file of the day, duplicates judged across files (first accepted occurrence wins)."""
    accepted: set[str] = set()
    day = InboxRead([], [], 0)
    for path in files:
        result = read_inbox(path, max_article_chars, accepted, max_id_chars)
        day.articles += result.articles
        day.rejects += result.rejects
        day.lines_read += result.lines_read
    return day


def stage_day(params: Params, dt: str, files: Sequence[str]) -> list[str]:
    """Read the day's files into a new version folder: the rejects part, exactly `nightly.shards`
    shard files (some may be empty, so every mapped task has work to report), and last the manifest
    (a folder without one was never fully staged). A retry stages a new version; the next
    successful publish of the day removes the abandoned one."""
    nightly = params.nightly
    fs, root = open_root(nightly.warehouse_dir)
    version = new_version()
    folder = f"{day_versions_dir(root, dt)}/{version}"
    started = time.perf_counter()
    day = read_day(files, nightly.max_article_chars, nightly.max_article_id_chars)
    reasons = Counter(r.reason for r in day.rejects)
    log.info("stage dt=%s: %d file(s), %d line(s) read -> %d article(s), %d reject(s) %s in %.1f s", dt, len(files),
             day.lines_read, len(day.articles), len(day.rejects), dict(sorted(reasons.items())), time.perf_counter() - started)
    write_part(fs, f"{folder}/rejects/part-inbox.parquet", rejects_table(day.rejects))
    shard_paths = []
    for index, group in enumerate(assign_shards(day.articles, nightly.shards)):
        path = f"{folder}/{SHARDS_DIR}/shard-{index:03d}.parquet"
        write_part(fs, path, pa.Table.from_pylist([a.row() for a in group], schema=SHARD_SCHEMA))
        shard_paths.append(url_of(fs, path))
    manifest = {"dt": dt, "version": version, "files": list(files), "lines_read": day.lines_read,
                "shards": nightly.shards}
    write_json(fs, f"{folder}/{MANIFEST_FILE}", manifest)
    log.info("staged dt=%s as version %s in %d shards", dt, version, nightly.shards)
    return shard_paths


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


def read_shard(path: str) -> list[Article]:
    fs, local = open_root(path)
    rows = pq.read_table(local, filesystem=fs, schema=SHARD_SCHEMA).to_pylist()
    return [Article(**row) for row in rows]


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
    """One shard task's tag settings: unless tag.torch_threads is set, its threads are this machine's
    usable cores over the tag tasks running on it at once (nightly.tag_slots),
    since k tasks each taking every core tag slower together than one alone (make bench)."""
    return worker_params(params.tag, params.nightly.tag_slots)  # a shard task is one of those processes


def tag_shard(params: Params, shard_path: str, tagger: Tagger | None = None) -> ShardResult:
    """Tag one shard, `chunk_articles` at a time (memory stays bounded), into its staging parts; the
    model on tag.device with shard_tag_params' threads."""
    tagger = tagger or Tagger.load(params.nightly.tagging_model(), shard_tag_params(params))
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
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return path
