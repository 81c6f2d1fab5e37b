"""The tagged-articles warehouse: Parquet schemas, the staging area, atomic day publishing.

Three hive-partitioned datasets live under one root (a local folder or any fsspec URL):
`entities/dt=YYYY-MM-DD/`, `articles/dt=.../`, `rejects/dt=.../`, plus `_manifests/dt=....json`
(lines read, files, model version). A night writes everything into `_staging/` first; publishing
checks every staged part is readable, then swaps each partition directory in by rename, so a
failure before the swap leaves the published day exactly as it was, and re-running a day replaces
that day only. Folders starting with `_` are skipped by pyarrow and by a `dt=*` glob in DuckDB.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from healthner.corpus.labels import ENTITY_TYPES

DATASETS = ("entities", "articles", "rejects")
STAGING_DIR = "_staging"
REPLACED_DIR = "_replaced"  # old partitions parked here during the swap, then deleted
MANIFEST_DIR = "_manifests"
MANIFEST_FILE = "_manifest.json"
SHARDS_DIR = "_shards"  # tagging inputs inside a staging folder; never published
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


class PublishError(RuntimeError):
    """The staged day is incomplete or unreadable; nothing was published."""


def open_root(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a warehouse or inbox URL (plain paths are local)."""
    fs, root = fsspec.core.url_to_fs(str(url))
    return fs, root.rstrip("/")


def partition_path(root: str, dataset: str, dt: str) -> str:
    return f"{root}/{dataset}/dt={dt}"


def manifest_path(root: str, dt: str) -> str:
    return f"{root}/{MANIFEST_DIR}/dt={dt}.json"


def new_staging(warehouse: str, dt: str) -> str:
    """A fresh staging folder for one run of one day (runs never share staged parts)."""
    fs, root = open_root(warehouse)
    path = f"{root}/{STAGING_DIR}/dt={dt}/{uuid.uuid4().hex[:12]}"
    fs.makedirs(path, exist_ok=True)
    return path


def staging_of(shard_path: str) -> str:
    """The staging folder a shard file belongs to."""
    return shard_path.rsplit(f"/{SHARDS_DIR}/", 1)[0]


def write_part(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    pq.write_table(table, path, filesystem=fs)


def write_manifest(fs: fsspec.AbstractFileSystem, path: str, manifest: dict) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1, sort_keys=True)


def read_manifest(warehouse: str, dt: str) -> dict:
    fs, root = open_root(warehouse)
    with fs.open(manifest_path(root, dt), "r", encoding="utf-8") as fh:
        return json.load(fh)


def _check_staged(fs: fsspec.AbstractFileSystem, staging: str) -> dict[str, int]:
    """Rows per dataset; raises PublishError unless every dataset has parts that read with its schema."""
    if not fs.exists(f"{staging}/{MANIFEST_FILE}"):
        raise PublishError(f"{staging}: no {MANIFEST_FILE}; the day was not fully staged")
    rows = {}
    for dataset, schema in SCHEMAS.items():
        parts = sorted(fs.glob(f"{staging}/{dataset}/*.parquet"))
        if not parts:
            raise PublishError(f"{staging}/{dataset}: no staged parts")
        rows[dataset] = 0
        for part in parts:
            try:
                table = pq.read_table(part, filesystem=fs)
            except (OSError, pa.ArrowException) as exc:
                raise PublishError(f"{part}: unreadable staged part: {exc}") from exc
            if not table.schema.equals(schema):
                raise PublishError(f"{part}: schema {table.schema} differs from the {dataset} schema")
            rows[dataset] += table.num_rows
    return rows


def _swap(fs: fsspec.AbstractFileSystem, staged: str, target: str, parked: str) -> bool:
    """Rename the old partition aside and the staged one in; put the old one back on failure.
    Returns whether an old partition was parked."""
    had_old = fs.exists(target)
    if had_old:
        fs.makedirs(parked.rsplit("/", 1)[0], exist_ok=True)
        fs.mv(target, parked, recursive=True)
    try:
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.mv(staged, target, recursive=True)
    except Exception:
        if had_old:
            fs.mv(parked, target, recursive=True)
        raise
    return had_old


@dataclass(frozen=True)
class Published:
    dt: str
    rows: dict[str, int]
    lines_read: int


def publish_day(warehouse: str, dt: str, staging: str) -> Published:
    """Publish one staged day: every dataset's partition swapped in, the old ones deleted.

    A local rename is atomic; object stores have no rename (fsspec copies), so there the swap
    is a copy and readers should go through the manifest (written last) for consistency.
    """
    fs, root = open_root(warehouse)
    rows = _check_staged(fs, staging)
    with fs.open(f"{staging}/{MANIFEST_FILE}", "r", encoding="utf-8") as fh:
        manifest = json.load(fh)
    token = uuid.uuid4().hex[:12]
    parked = []
    for dataset in DATASETS:
        old = f"{root}/{REPLACED_DIR}/{dataset}/dt={dt}-{token}"
        if _swap(fs, f"{staging}/{dataset}", partition_path(root, dataset, dt), old):
            parked.append(old)
    write_manifest(fs, manifest_path(root, dt), {**manifest, "rows": rows})
    for old in parked:
        fs.rm(old, recursive=True)
    fs.rm(staging, recursive=True)
    return Published(dt, rows, int(manifest["lines_read"]))


def read_partition(warehouse: str, dataset: str, dt: str) -> pa.Table:
    """One published day of one dataset (an empty table with the schema if none)."""
    fs, root = open_root(warehouse)
    path = partition_path(root, dataset, dt)
    if not fs.exists(path):
        return SCHEMAS[dataset].empty_table()
    return pq.read_table(path, filesystem=fs, schema=SCHEMAS[dataset], partitioning=None)
