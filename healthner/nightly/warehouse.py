"""The tagged-articles warehouse: Parquet schemas, its layout, and reading the published days.

Under one root (a local folder or any fsspec URL):

    _versions/dt=D/<version>/{entities,articles,rejects}/*.parquet   one try of one night
    _versions/dt=D/<version>/_manifest.json, _check.json, _shards/    its staging facts, check verdict, inputs
    _published/dt=D.json      the day's pointer: its published version, that version's files, row counts
    entities/dt=D  ->  ../_versions/dt=D/current/entities             (local roots: plain hive paths)
    _reports/dt=D/            Data Docs of the night's last check
    _locks/dt=D.lock          held while a day is published

A night writes a new version folder and never touches the published one; publishing replaces the
pointer in one atomic write, so a reader that reads the pointer once gets the three tables of one
version (`read_day`, `current_files`, `healthner query`). Folders starting with `_` are skipped by
pyarrow and Spark, and by a `dt=*` glob in DuckDB.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import HealthnerError
from healthner.nightly.faults import fault_point

DATASETS = ("entities", "articles", "rejects")
VERSIONS_DIR = "_versions"
POINTERS_DIR = "_published"
REPORTS_DIR = "_reports"
LOCKS_DIR = "_locks"
CURRENT_LINK = "current"  # _versions/dt=D/current -> the published version (local roots)
MANIFEST_FILE = "_manifest.json"  # written by stage into its version folder
CHECK_FILE = "_check.json"  # the check's verdict on a version folder
SHARDS_DIR = "_shards"  # tagging inputs (article text) inside a version folder; never published
ARTICLE_META = ("title", "source", "url", "published_at")
TYPE_COUNT_COLUMNS = tuple(f"n_{etype.lower()}" for etype in ENTITY_TYPES)
STATUS_TAGGED = "tagged"

ENTITIES_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("type", pa.string()),
        ("text", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("score", pa.float32()),
        ("model_version", pa.string()),
    ]
)
ARTICLES_SCHEMA = pa.schema(
    [("article_id", pa.string())]
    + [(name, pa.string()) for name in ARTICLE_META]
    + [("status", pa.string()), ("characters", pa.int32()), ("n_entities", pa.int32())]
    + [(name, pa.int32()) for name in TYPE_COUNT_COLUMNS]
    + [("model_version", pa.string())]
)
REJECTS_SCHEMA = pa.schema(
    [("article_id", pa.string()), ("location", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)
SCHEMAS: dict[str, pa.Schema] = {"entities": ENTITIES_SCHEMA, "articles": ARTICLES_SCHEMA, "rejects": REJECTS_SCHEMA}


class PublishError(HealthnerError):
    """The version cannot be published (incomplete, unreadable, unchecked); nothing was published."""


def open_root(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a warehouse or inbox URL (plain paths are local)."""
    fs, root = fsspec.core.url_to_fs(str(url))
    return fs, root.rstrip("/")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Local roots get renames, symlinks and locks; object stores get the pointer only."""
    return isinstance(fs, LocalFileSystem)


# --- layout ---------------------------------------------------------------------------------------


def day_versions_dir(root: str, dt: str) -> str:
    return f"{root}/{VERSIONS_DIR}/dt={dt}"


def pointer_path(root: str, dt: str) -> str:
    return f"{root}/{POINTERS_DIR}/dt={dt}.json"


def partition_path(root: str, dataset: str, dt: str) -> str:
    """The plain hive path of one day of one table (a link to the published version, local roots)."""
    return f"{root}/{dataset}/dt={dt}"


def new_version() -> str:
    """A version name that sorts by the time it was staged (UTC), unique across workers."""
    now = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000_000))
    return f"{stamp}.{now % 1_000_000_000:09d}Z-{uuid.uuid4().hex[:8]}"


def version_of(version_dir: str) -> tuple[str, str]:
    """(dt, version) of a version folder `.../_versions/dt=D/<version>`."""
    parent, version = version_dir.rstrip("/").rsplit("/", 1)
    return parent.rsplit("/dt=", 1)[-1], version


def version_dir_of(shard_path: str) -> str:
    """The version folder a shard file belongs to."""
    return shard_path.rsplit(f"/{SHARDS_DIR}/", 1)[0]


# --- small files ----------------------------------------------------------------------------------


def write_part(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    pq.write_table(table, path, filesystem=fs)


def write_json(fs: fsspec.AbstractFileSystem, path: str, value: dict, fault: str | None = None) -> None:
    """Write a small JSON file so that readers see the old or the new content, never a part:
    a synced temporary file renamed over it (local), one PUT (object stores). `fault`: a fault
    point between the two (faults.py)."""
    data = json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}"
    with open(temporary, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if fault:
        fault_point(fault)
    os.replace(temporary, path)
    sync_folder(folder)


def sync_folder(folder: str) -> None:
    """Make a rename or a new entry in a local folder durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> dict | None:
    try:
        with fs.open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def part_fingerprints(fs: fsspec.AbstractFileSystem, version_dir: str) -> dict[str, dict[str, int]]:
    """Each table's part files (name -> bytes): what a check verdict was given, so a changed part voids it."""
    return {
        dataset: {path.rsplit("/", 1)[-1]: int(fs.size(path)) for path in sorted(fs.glob(f"{version_dir}/{dataset}/*.parquet"))}
        for dataset in DATASETS
    }


# --- reading what is published --------------------------------------------------------------------


def read_pointer(warehouse: str, dt: str) -> dict | None:
    """The day's pointer (its published version, files, rows, lines read), or None if never published."""
    fs, root = open_root(warehouse)
    return read_json(fs, pointer_path(root, dt))


def read_manifest(warehouse: str, dt: str) -> dict:
    """The published day's facts (lines_read, rows, version, inbox files); FileNotFoundError if none."""
    pointer = read_pointer(warehouse, dt)
    if pointer is None:
        raise FileNotFoundError(f"{warehouse}: dt={dt} was never published")
    return pointer


def published_days(warehouse: str) -> list[str]:
    fs, root = open_root(warehouse)
    names = fs.glob(f"{root}/{POINTERS_DIR}/dt=*.json")
    return sorted(name.rsplit("/dt=", 1)[-1].removesuffix(".json") for name in names)


def url_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A path as other processes open it: plain (local), with its protocol (object stores)."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def pointer_files(fs: fsspec.AbstractFileSystem, root: str, pointer: dict) -> dict[str, list[str]]:
    """The pointer's files per table, as paths (local) or URLs (object stores)."""
    return {dataset: [url_of(fs, f"{root}/{name}") for name in pointer["files"][dataset]] for dataset in DATASETS}


def current_files(warehouse: str) -> dict[str, list[str]]:
    """Every published day's current files per table, each day read from its pointer once."""
    fs, root = open_root(warehouse)
    files: dict[str, list[str]] = {dataset: [] for dataset in DATASETS}
    for dt in published_days(warehouse):
        pointer = read_json(fs, pointer_path(root, dt))
        if pointer is not None:
            for dataset, names in pointer_files(fs, root, pointer).items():
                files[dataset] += names
    return files


@dataclass(frozen=True)
class Day:
    """One published day as read from one pointer: the three tables of one version."""

    dt: str
    version: str
    tables: dict[str, pa.Table]
    lines_read: int


def read_tables(fs: fsspec.AbstractFileSystem, files: dict[str, list[str]]) -> dict[str, pa.Table]:
    """Each table from its files, with its schema (an empty table when it has none)."""
    tables = {}
    for dataset, names in files.items():
        parts = [pq.read_table(name, filesystem=fs, schema=SCHEMAS[dataset]) for name in names]
        tables[dataset] = pa.concat_tables(parts) if parts else SCHEMAS[dataset].empty_table()
    return tables


def read_day(warehouse: str, dt: str) -> Day | None:
    """The published day, all three tables of the version its pointer names; None if never published."""
    fs, root = open_root(warehouse)
    pointer = read_json(fs, pointer_path(root, dt))
    if pointer is None:
        return None
    tables = read_tables(fs, pointer_files(fs, root, pointer))
    return Day(dt, pointer["version"], tables, int(pointer["lines_read"]))


def read_partition(warehouse: str, dataset: str, dt: str) -> pa.Table:
    """One published day of one table (an empty table with the schema if the day is not published)."""
    day = read_day(warehouse, dt)
    return day.tables[dataset] if day else SCHEMAS[dataset].empty_table()
