"""Staging a day: the day's inbox files read into a new folder of the staging area (its rejects
part, its shard files and last the stage manifest), and the model the night is tagged with pinned
in that manifest, so every shard of the night runs the same model.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.config import Params
from healthner.errors import ModelIntegrityError
from healthner.nightly.inbox import Article, InboxRead, Reject, read_inbox
from healthner.nightly.staging import (
    MANIFEST_FILE,
    SHARDS_DIR,
    new_version,
    read_json,
    staging_dir,
    version_dir_of,
    write_json,
    write_part,
)
from healthner.nightly.warehouse import ARTICLE_META, REJECTS_SCHEMA, open_root, url_of
from healthner.sections.tagging import NightlyParams

SHARD_SCHEMA = pa.schema(
    [("article_id", pa.string()), ("text", pa.string()), ("location", pa.string())]
    + [(name, pa.string()) for name in ARTICLE_META]
)

log = logging.getLogger(__name__)


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


def read_day(
    files: Sequence[str], max_article_chars: int, max_id_chars: int = NightlyParams().max_article_id_chars
) -> InboxRead:
    """Every file of the day, duplicates judged across files (first accepted occurrence wins)."""
    accepted: set[str] = set()
    day = InboxRead([], [], 0)
    for path in files:
        result = read_inbox(path, max_article_chars, accepted, max_id_chars)
        day.articles += result.articles
        day.rejects += result.rejects
        day.lines_read += result.lines_read
    return day


class ModelNotPinned(ModelIntegrityError):
    """A shard of a night staged without a model (no model existed at stage): it is never tagged."""


def pin_model(nightly: NightlyParams) -> dict | None:
    """The model every shard of a night loads: the folder nightly.tagging_model() names at stage and
    its model_version, checked against its files now. Pinned once, so a model that appears or changes
    while the night runs can never mix two models in one night (a shard then fails instead). None
    when there is no model yet: the night stages, and its shards refuse to tag."""
    from healthner.ensemble.shipped import MANIFEST_FILE as MODEL_MANIFEST
    from healthner.ensemble.shipped import read_manifest

    folder = Path(nightly.tagging_model()).absolute()
    if not (folder / MODEL_MANIFEST).is_file():
        return None
    return {"path": str(folder), "model_version": read_manifest(folder)["model_version"]}


def pinned_model(shard_path: str) -> tuple[str, str]:
    """(model folder, model_version) pinned in the stage manifest of the shard's version folder."""
    fs, local = open_root(shard_path)
    folder = version_dir_of(local)
    pin = (read_json(fs, f"{folder}/{MANIFEST_FILE}") or {}).get("model")
    if not pin:
        raise ModelNotPinned(f"{folder}: staged without a model (none in nightly.model_dir or fallback_model_dir "
                             "at stage); stage the day again once one exists")
    return pin["path"], pin["model_version"]


def stage_day(params: Params, dt: str, files: Sequence[str]) -> list[str]:
    """Read the day's files into a new version folder: the rejects part, exactly `nightly.shards`
    shard files (some may be empty, so every mapped task has work to report), and last the manifest
    (a folder without one was never fully staged), which pins the night's model (pin_model). A retry
    stages a new version; the next successful publish of the day removes the abandoned one."""
    nightly = params.nightly
    model = pin_model(nightly)
    fs, root = open_root(nightly.warehouse_dir)
    version = new_version()
    folder = f"{staging_dir(root, dt)}/{version}"
    started = time.perf_counter()
    day = read_day(files, nightly.max_article_chars, nightly.max_article_id_chars)
    reasons = Counter(r.reason for r in day.rejects)
    log.info("stage dt=%s: %d file(s), %d line(s) read -> %d article(s), %d reject(s) %s in %.1f s", dt, len(files),
             day.lines_read, len(day.articles), len(day.rejects), dict(sorted(reasons.items())),
             time.perf_counter() - started)
    write_part(fs, f"{folder}/rejects/part-inbox.parquet", rejects_table(day.rejects))
    shard_paths = []
    for index, group in enumerate(assign_shards(day.articles, nightly.shards)):
        path = f"{folder}/{SHARDS_DIR}/shard-{index:03d}.parquet"
        write_part(fs, path, pa.Table.from_pylist([a.row() for a in group], schema=SHARD_SCHEMA))
        shard_paths.append(url_of(fs, path))
    manifest = {"dt": dt, "version": version, "files": list(files), "lines_read": day.lines_read,
                "shards": nightly.shards, "model": model}
    write_json(fs, f"{folder}/{MANIFEST_FILE}", manifest)
    log.info("staged dt=%s as version %s in %d shards, model %s", dt, version, nightly.shards, model)
    return shard_paths


def read_shard(path: str) -> list[Article]:
    fs, local = open_root(path)
    rows = pq.read_table(local, filesystem=fs, schema=SHARD_SCHEMA).to_pylist()
    return [Article(**row) for row in rows]
