"""The tagged-articles warehouse: Delta Lake tables, their schemas, and reading the published nights.

Under one root (a local folder or an s3:// URL):

    entities/ articles/ rejects/   Delta tables partitioned by dt; every row carries its `night`
    nights/                        Delta table, one record per published day: the night, its rows,
                                   lines read, model_version and each table's version holding it
    _staging/dt=D/<night>/         one staged try of a night (staging.py); removed once published
    _reports/dt=D/                 Data Docs of the night's last check (local roots)

A night commits the three tables one after the other, then its record (publish.py). The record is
the commit point for healthner's readers: a day is read from a table's current version when the
table holds that day from the recorded night, else from the version the record names, so a reader
never sees a night half-published (docs/design.md). Row counts are checked against the record, so
a table that lost files is an error, never fewer rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem

from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import HealthnerError

DATASETS = ("entities", "articles", "rejects")
NIGHTS = "nights"
NIGHT_COLUMN = "night"  # the staged version a row was published by
REPORTS_DIR = "_reports"
ARTICLE_META = ("title", "source", "url", "published_at")
TYPE_COUNT_COLUMNS = tuple(f"n_{etype.lower()}" for etype in ENTITY_TYPES)
STATUS_TAGGED = "tagged"
# A checkpoint after every commit: the table's state never depends on replaying old log entries.
TABLE_CONFIG = {"delta.checkpointInterval": "1"}

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
NIGHTS_SCHEMA = pa.schema(
    [("dt", pa.string()), (NIGHT_COLUMN, pa.string()), ("model_version", pa.string()), ("lines_read", pa.int64()),
     ("published_at", pa.timestamp("us", tz="UTC")), ("inbox_files", pa.list_(pa.string()))]
    + [(f"{name}_rows", pa.int64()) for name in DATASETS]
    + [(f"{name}_version", pa.int64()) for name in DATASETS]
)


class PublishError(HealthnerError):
    """The night cannot be published (incomplete, unreadable, unchecked); nothing was published."""


class WarehouseCorrupt(HealthnerError):
    """A table's log or files do not match what was published (tampered, lost, unreadable)."""


def open_root(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a warehouse or inbox URL (plain paths are local)."""
    fs, root = fsspec.core.url_to_fs(str(url))
    return fs, root.rstrip("/")


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def url_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A path as other processes open it: plain (local), with its protocol (object stores)."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


# --- the Delta tables -----------------------------------------------------------------------------


def table_uri(warehouse: str, name: str) -> str:
    return f"{str(warehouse).rstrip('/')}/{name}"


def storage_options(warehouse: str) -> dict[str, str] | None:
    """deltalake's options for a warehouse URL: on s3, commits by conditional put (If-None-Match),
    so concurrent writers need no lock table; the credentials and endpoint fsspec is configured with
    (`fsspec.config.conf["s3"]`, which the DAG fills from its Airflow connection), so the Delta
    commits and the fsspec reads use the same account; plain HTTP allowed for a local endpoint
    (moto, MinIO). Without fsspec settings, delta-rs takes the standard AWS chain."""
    if not str(warehouse).startswith("s3://"):
        return None
    import fsspec.config

    s3 = fsspec.config.conf.get("s3", {})
    region = (s3.get("client_kwargs") or {}).get("region_name")
    endpoint = s3.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL", "")
    options = {"conditional_put": "etag", "aws_access_key_id": s3.get("key"),
               "aws_secret_access_key": s3.get("secret"), "aws_endpoint_url": s3.get("endpoint_url"),
               "aws_region": region}
    if endpoint.startswith("http://"):
        options["allow_http"] = "true"
    return {name: value for name, value in options.items() if value}


def arrow_filesystem(warehouse: str, uri: str) -> pafs.FileSystem:
    """Arrow's own filesystem rooted at table `uri`, that the table's Parquet files are read through
    (on s3 with the account `storage_options` gives deltalake). deltalake's default reads through its
    object store behind a Python filesystem handler, whose Arrow I/O threads can outlive the reader and
    abort the interpreter at exit ("terminate called without an active exception", delta-rs#2184):
    a short-lived reader such as `healthner query` would fail one run in a few after printing its
    answer. Arrow's native filesystems shut their threads down cleanly."""
    if not str(uri).startswith("s3://"):
        return pafs.SubTreeFileSystem(os.path.abspath(uri), pafs.LocalFileSystem())
    options = storage_options(warehouse) or {}
    endpoint = urlsplit(options.get("aws_endpoint_url") or os.environ.get("AWS_ENDPOINT_URL", ""))
    settings = {"access_key": options.get("aws_access_key_id"), "secret_key": options.get("aws_secret_access_key"),
                "region": options.get("aws_region"), "endpoint_override": endpoint.netloc,
                "scheme": endpoint.scheme}
    s3 = pafs.S3FileSystem(**{name: value for name, value in settings.items() if value})
    return pafs.SubTreeFileSystem(str(uri).removeprefix("s3://"), s3)


def arrow_dataset(warehouse: str, name: str, table, days: list[str] | None = None) -> pads.Dataset:
    """Table `name`'s files in this version (only the days' partitions, when given) as one Arrow dataset."""
    pruning = [("dt", "in", days)] if days is not None else None
    return table.to_pyarrow_dataset(file_pruning_predicate=pruning,
                                    filesystem=arrow_filesystem(warehouse, table_uri(warehouse, name)))


def corrupt_log_entries(uri: str) -> list[str]:
    """The table's log entries (newest first) that are not JSON lines."""
    fs, log = open_root(f"{uri}/_delta_log")
    corrupt = []
    for path in sorted(fs.glob(f"{log}/*.json"), reverse=True):
        try:
            for line in fs.cat_file(path).decode("utf-8").splitlines():
                json.loads(line)
        except (ValueError, UnicodeDecodeError):
            corrupt.append(url_of(fs, path))
    return corrupt


def log_error(uri: str, exc: Exception) -> WarehouseCorrupt:
    """A Delta error as one line naming the log entry that fails to parse, when one does."""
    reason = " ".join(str(exc).split())
    corrupt = corrupt_log_entries(uri)
    if corrupt:
        return WarehouseCorrupt(f"{corrupt[0]}: corrupt Delta log entry ({reason}); restore it from a backup")
    return WarehouseCorrupt(f"{uri}: unreadable Delta table: {reason}")


def load_table(warehouse: str, name: str, version: int | str | None = None):
    """The Delta table (at `version`: a number or an ISO timestamp), None if it was never written."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    uri = table_uri(warehouse, name)
    try:
        table = DeltaTable(uri, storage_options=storage_options(warehouse))
        if version is not None:
            table.load_as_version(version)
        return table
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise log_error(uri, exc) from exc


def day_stats(table) -> dict[str, tuple[set[str], int]]:
    """Per day: the nights its rows came from and its row count, from the log's file statistics."""
    if table is None:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    days: dict[str, tuple[set[str], int]] = {}
    for action in actions:
        nights, rows = days.get(action["partition.dt"], (set(), 0))
        nights |= {action.get(f"min.{NIGHT_COLUMN}"), action.get(f"max.{NIGHT_COLUMN}")}
        days[action["partition.dt"]] = (nights, rows + int(action["num_records"]))
    return days


def read_nights(warehouse: str, as_of: int | str | None = None) -> dict[str, dict]:
    """The night record of every published day (as of a `nights` version or timestamp)."""
    table = load_table(warehouse, NIGHTS, as_of)
    if table is None:
        return {}
    return {row["dt"]: row for row in arrow_dataset(warehouse, NIGHTS, table).to_table().to_pylist()}


def published_days(warehouse: str) -> list[str]:
    return sorted(read_nights(warehouse))


def read_night(warehouse: str, dt: str) -> dict | None:
    """The day's night record (night, rows, lines_read, model_version, table versions), None if never published."""
    return read_nights(warehouse).get(dt)


def holds(stats: dict[str, tuple[set[str], int]], dt: str, record: dict, name: str) -> bool:
    """Whether a table version's file statistics hold day `dt` exactly as its night record says:
    rows from the recorded night only, as many as recorded (a day without rows: no files)."""
    nights, rows = stats.get(dt, (set(), 0))
    return rows == record[f"{name}_rows"] and (rows == 0 or nights == {record[NIGHT_COLUMN]})


def day_sources(warehouse: str, name: str, records: dict[str, dict], as_of: bool = False) -> list[pads.Dataset]:
    """Datasets holding exactly the recorded night of every day in `records`: the table's current
    version for the days it holds from that night, the recorded version for the days it holds from
    another night (a later one is being committed, or one was cut off). A day held from its recorded
    night with other row counts than recorded was altered after publishing: WarehouseCorrupt."""
    if not records:
        return []
    pinned_at = max(record[f"{name}_version"] for record in records.values()) if as_of else None
    current = load_table(warehouse, name, pinned_at)
    stats = day_stats(current)
    fresh, sources = [], []
    for dt, record in sorted(records.items()):
        if holds(stats, dt, record, name):
            fresh.append(dt)
            continue
        table = current if stats.get(dt, (set(),))[0] == {record[NIGHT_COLUMN]} else \
            load_table(warehouse, name, record[f"{name}_version"])
        if not holds(day_stats(table), dt, record, name):
            held = day_stats(table).get(dt, (set(), 0))[1]
            raise WarehouseCorrupt(f"{table_uri(warehouse, name)} dt={dt}: {held} rows at version {table.version()}, "
                                   f"{record[f'{name}_rows']} in its night record; the table was altered after publishing")
        sources.append((table, [dt]))
    return [arrow_dataset(warehouse, name, table, days)
            for table, days in ([(current, fresh)] if fresh else []) + sources]


@dataclass(frozen=True)
class Day:
    """One published day: the three tables of its recorded night."""

    dt: str
    version: str
    tables: dict[str, pa.Table]
    lines_read: int
    model_version: str


def read_sources(name: str, sources: list[pads.Dataset], dt: str | None = None) -> pa.Table:
    """The rows of `sources` (of one day) with the table's schema; a lost or damaged file is named."""
    try:
        parts = [source.to_table(filter=None if dt is None else pads.field("dt") == dt) for source in sources]
    except (OSError, pa.ArrowException) as exc:
        raise WarehouseCorrupt(f"{name} dt={dt}: {' '.join(str(exc).split())}") from exc
    return pa.concat_tables([p.select(SCHEMAS[name].names).cast(SCHEMAS[name]) for p in parts]) if parts \
        else SCHEMAS[name].empty_table()


def read_day(warehouse: str, dt: str) -> Day | None:
    """The published day, all three tables of its recorded night; None if never published."""
    record = read_night(warehouse, dt)
    if record is None:
        return None
    records = {dt: record}
    tables = {name: read_sources(name, day_sources(warehouse, name, records), dt) for name in DATASETS}
    return Day(dt, record[NIGHT_COLUMN], tables, int(record["lines_read"]), record["model_version"])


def read_partition(warehouse: str, dataset: str, dt: str) -> pa.Table:
    """One published day of one table (an empty table with the schema if the day is not published)."""
    day = read_day(warehouse, dt)
    return day.tables[dataset] if day else SCHEMAS[dataset].empty_table()
