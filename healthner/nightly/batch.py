"""Batch tagging: a day's inbox staged into shards, shards tagged into Parquet parts, a file tagged.

The nightly DAG calls, in order: `day_files` -> `stage_day` (read + rejects + shards) ->
`tag_shard` per shard (mapped) -> `checks.check_version` -> `publish.publish_day` (nightly/night.py
holds the DAG's task bodies).
`tag_file` is the same tagging for one file from the CLI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from healthner.config import NightlyParams, Params, TagParams
from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import InputFormatError
from healthner.nightly.inbox import (
    Article,
    InboxRead,
    Reject,
    check_record,
    day_files,
    read_inbox,
    read_inbox_file,
    read_inbox_lines,
)
from healthner.nightly.pool import TaggerPool, closing_pool, load_tagging, worker_params
from healthner.nightly.staging import (
    MANIFEST_FILE,
    SHARDS_DIR,
    new_version,
    staging_dir,
    version_dir_of,
    write_json,
    write_part,
)
from healthner.nightly.tagger import Entity, Tagger
from healthner.nightly.warehouse import (
    ARTICLE_META,
    ARTICLES_SCHEMA,
    ENTITIES_SCHEMA,
    REJECTS_SCHEMA,
    STATUS_TAGGED,
    TYPE_COUNT_COLUMNS,
    open_root,
    url_of,
)

__all__ = ["build_sample_inbox", "day_files", "read_inbox_file", "stage_day", "tag_file", "tag_shard"]

SHARD_SCHEMA = pa.schema(
    [("article_id", pa.string()), ("text", pa.string()), ("location", pa.string())]
    + [(name, pa.string()) for name in ARTICLE_META]
)
SAMPLE_FILE = "articles-000.jsonl"
SAMPLE_JOIN = "\n"  # sentences of a sample article, one a line: the tagger cuts at newlines
RUN_KEY = b"healthner.run"  # Parquet metadata: the same value in a tag run's entities and rejects files

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
    folder = f"{staging_dir(root, dt)}/{version}"
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


def entity_rows(article_id: str, entities: Sequence[Entity], model_version: str) -> list[dict]:
    return [
        {"article_id": article_id, "type": e.type, "text": e.text, "start": e.start, "end": e.end,
         "score": e.score, "model_version": model_version}
        for e in entities
    ]


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


# --- one file from the CLI ------------------------------------------------------------------------


@dataclass(frozen=True)
class TagFileSummary:
    read: int
    tagged: int
    rejected: int
    entities: int
    model_version: str
    output: str
    rejects: str

    def __str__(self) -> str:
        return (f"read {self.read}: tagged {self.tagged}, rejected {self.rejected}; {self.entities} entities "
                f"(model {self.model_version}) -> {self.output}; rejects -> {self.rejects}")


def read_input(path: Path, max_chars: int, max_id_chars: int = NightlyParams().max_article_id_chars) -> InboxRead:
    """A JSON-lines file (any name), or a Parquet table with article_id and text (row n = location name:n)."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(f"{path}: input file not found")
    if path.suffix.lower() != ".parquet":
        return read_inbox_lines(path.read_bytes(), path.name, max_chars, None, max_id_chars)
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise InputFormatError(f"{path}: not a readable Parquet table: {exc}") from exc
    result, accepted = InboxRead([], [], len(rows)), set()
    for number, row in enumerate(rows, start=1):
        outcome = check_record(row, f"{path.name}:{number}", max_chars, accepted, max_id_chars)
        (result.rejects if isinstance(outcome, Reject) else result.articles).append(outcome)
    return result


def rejects_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejects.parquet")


def tag_articles(tagger: Tagger | TaggerPool, articles: Sequence[Article], chunk_articles: int) -> list[dict]:
    """Entity rows of every article, `chunk_articles` at a time, with a progress bar on a terminal."""
    rows: list[dict] = []
    with tqdm(total=len(articles), desc="tag", unit="article", disable=None) as bar:
        for chunk in chunks(articles, chunk_articles):
            for article, found in zip(chunk, tagger.tag([a.text for a in chunk]), strict=True):
                rows += entity_rows(article.article_id, found, tagger.model_version)
            bar.update(len(chunk))
    return rows


def write_together(tables: dict[Path, pa.Table]) -> None:
    """Write every table to a temporary name beside its target, then rename them all into place;
    on any failure before the renames, remove the temporaries and leave the old files as they were.
    Each file carries the same run id (RUN_KEY) in its metadata, so a reader can tell a matched pair."""
    run = uuid.uuid4().hex.encode()
    temporary = {target: target.with_name(f".{target.name}.{run.decode()[:12]}.tmp") for target in tables}
    try:
        for target, table in tables.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            metadata = {**(table.schema.metadata or {}), RUN_KEY: run}
            pq.write_table(table.replace_schema_metadata(metadata), temporary[target])
    except BaseException:
        for path in temporary.values():
            path.unlink(missing_ok=True)
        raise
    for target, path in temporary.items():
        os.replace(path, target)


def tag_file(
    params: Params, model_dir: Path, input: Path, output: Path, tagger: Tagger | TaggerPool | None = None
) -> TagFileSummary:
    """Tag one file: one row per entity to `output`, rejects (with reasons) to `<stem>.rejects.parquet`.
    Both files are replaced together at the end (write_together), or neither is. Without a `tagger`,
    a large input is tagged by a pool of processes (tag.workers)."""
    nightly = params.nightly
    read = read_input(Path(input), nightly.max_article_chars, nightly.max_article_id_chars)
    log.info("tag %s: %d line(s) read, %d article(s), %d reject(s)", input, read.lines_read, len(read.articles),
             len(read.rejects))
    chars = sum(len(a.text) for a in read.articles)
    with closing_pool(tagger or load_tagging(model_dir, params.tag, chars), own=tagger is None) as used:
        rows = tag_articles(used, read.articles, nightly.chunk_articles)
        model_version = used.model_version
    output = Path(output)
    write_together({output: pa.Table.from_pylist(rows, schema=ENTITIES_SCHEMA),
                    rejects_path(output): rejects_table(read.rejects)})
    return TagFileSummary(read.lines_read, len(read.articles), len(read.rejects), len(rows),
                          model_version, str(output), str(rejects_path(output)))


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
