"""Keeping the warehouse's Delta tables: vacuum, compaction of a day's small files, and migration
from the earlier layout (version folders named by `_published/dt=D.json` pointers).

Vacuum deletes data files that no current table version uses and that were superseded longer than
`nightly.vacuum_retention_hours` ago; time travel (`query --as-of`) and readers of a day whose next
night is still being committed need the files of older versions, so the retention bounds both.
Compaction rewrites a day's files into fewer ones; its commit carries the day and the night whose
rows it rewrote, so readers keep reading the day from the current version.
"""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.nightly.publish import METADATA_PREFIX, commit_day, night_record, with_day
from healthner.nightly.warehouse import (
    DATASETS,
    NIGHT_COLUMN,
    NIGHTS,
    SCHEMAS,
    WarehouseCorrupt,
    corrupt_log_entries,
    day_sources,
    load_table,
    open_root,
    read_day,
    read_nights,
    read_sources,
    table_uri,
)

logger = logging.getLogger(__name__)


def verify(warehouse: str) -> str:
    """Every table's log entries parse and every published day reads as its night record says;
    WarehouseCorrupt naming each problem (one per line) otherwise."""
    problems = [f"{path}: corrupt Delta log entry" for name in (*DATASETS, NIGHTS)
                for path in corrupt_log_entries(table_uri(warehouse, name))]
    records = read_nights(warehouse)
    for dt in sorted(records):
        for name in DATASETS:
            try:
                read_sources(name, day_sources(warehouse, name, {dt: records[dt]}), dt)
            except WarehouseCorrupt as exc:
                problems.append(str(exc))
    if problems:
        raise WarehouseCorrupt(f"{len(problems)} problem(s): " + " | ".join(problems))
    return f"{warehouse}: {len(records)} published day(s), every table's log and rows as recorded"


def vacuum(warehouse: str, retention_hours: int) -> str:
    """Delete every table's files superseded more than `retention_hours` ago; what was deleted."""
    lines = []
    for name in (*DATASETS, NIGHTS):
        table = load_table(warehouse, name)
        if table is not None:
            deleted = table.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
            lines.append(f"{name}: {len(deleted)} superseded file(s) deleted")
    return "\n".join(lines) or f"{warehouse}: no tables"


def compact(warehouse: str, dt: str | None = None) -> str:
    """Compact the small files of one published day (or of every one), table by table."""
    from deltalake import CommitProperties

    records = read_nights(warehouse)
    days = [dt] if dt else sorted(records)
    lines = []
    for day in days:
        if day not in records:
            raise WarehouseCorrupt(f"{warehouse}: dt={day} is not published")
        metadata = {f"{METADATA_PREFIX}dt": day, f"{METADATA_PREFIX}night": records[day][NIGHT_COLUMN],
                    f"{METADATA_PREFIX}operation": "compact"}
        for name in DATASETS:
            metrics = load_table(warehouse, name).optimize.compact(
                partition_filters=[("dt", "=", day)], commit_properties=CommitProperties(custom_metadata=metadata))
            lines.append(f"{name} dt={day}: {metrics['numFilesRemoved']} file(s) -> {metrics['numFilesAdded']}")
    return "\n".join(lines)


def old_day(fs, root: str, pointer: dict) -> dict[str, pa.Table]:
    """A day of the earlier layout: each table from the files its pointer lists, counts checked."""
    tables = {}
    for name in DATASETS:
        parts = [pq.read_table(f"{root}/{path}", filesystem=fs, schema=SCHEMAS[name]) for path in pointer["files"][name]]
        tables[name] = pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
        if tables[name].num_rows != pointer["rows"][name]:
            raise WarehouseCorrupt(f"{root}: dt={pointer['dt']} {name} has {tables[name].num_rows} rows in its files, "
                                   f"its pointer {pointer['rows'][name]}; not migrated")
    return tables


def migrate(source: str, warehouse: str) -> str:
    """Publish every day of an earlier-layout warehouse into the Delta tables under its own night
    version, then read each back and compare row counts. Rerunnable: a migrated day is skipped."""
    fs, root = open_root(source)
    lines = []
    for path in sorted(fs.glob(f"{root}/_published/dt=*.json")):
        with fs.open(path, "r", encoding="utf-8") as fh:
            try:
                pointer = json.load(fh)
            except ValueError as exc:
                raise WarehouseCorrupt(f"{path}: not a JSON pointer ({exc}); not migrated") from exc
        dt, night = pointer["dt"], pointer["version"]
        tables = old_day(fs, root, pointer)
        model_version = ",".join(sorted(set(tables["articles"].column("model_version").to_pylist()) - {None}))
        metadata = {f"{METADATA_PREFIX}dt": dt, f"{METADATA_PREFIX}night": night,
                    f"{METADATA_PREFIX}model_version": model_version, f"{METADATA_PREFIX}operation": "migrate"}
        versions = {name: commit_day(warehouse, name, with_day(tables[name], dt, night), dt, night, metadata)
                    for name in DATASETS}
        rows = {name: tables[name].num_rows for name in DATASETS}
        manifest = {"lines_read": pointer["lines_read"], "files": pointer.get("inbox_files", [])}
        commit_day(warehouse, NIGHTS, night_record(dt, night, manifest, rows, versions, model_version), dt, night, metadata)
        day = read_day(warehouse, dt)
        read_back = {name: day.tables[name].num_rows for name in DATASETS}
        if read_back != rows:
            raise WarehouseCorrupt(f"dt={dt}: migrated {rows} rows but read back {read_back}")
        lines.append(f"dt={dt} night {night}: {rows} rows, read back identical")
    return "\n".join(lines) or f"{source}: no published day (_published/dt=*.json)"
