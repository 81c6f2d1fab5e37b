"""Publishing a checked night: one Delta commit per table in a fixed order, then the night record.

    verify the staged night (manifest, a passed check of these very parts)
    -> entities, articles, rejects: replace the day (`overwrite` with predicate dt = D)
    -> nights: replace the day's record (the commit point: healthner's readers switch here)
    -> remove the day's staging folders up to this night

Each table commit is fenced by the night: a table already holding the day from this night is left
as it is (a retry), one holding it from a later-staged night raises Superseded, and a concurrent
commit to the same day fails Delta's conflict check and is retried against the new state. So a
publish interrupted anywhere is completed by running it again, the record is written once, and of
two nights of one day the later-staged one wins. Commits carry dt, the night and model_version
in their commit metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from healthner.errors import HealthnerError
from healthner.nightly.faults import fault_point
from healthner.nightly.staging import clean_staging, staged_tables, staging_dir, version_of
from healthner.nightly.warehouse import (
    DATASETS,
    NIGHT_COLUMN,
    NIGHTS,
    NIGHTS_SCHEMA,
    TABLE_CONFIG,
    PublishError,
    day_stats,
    load_table,
    open_root,
    read_night,
    storage_options,
    table_uri,
)
from healthner.sections.tagging import NightlyParams

logger = logging.getLogger(__name__)
COMMIT_TRIES = 20  # a commit that lost a race with another day's or night's commit is retried
METADATA_PREFIX = "healthner."


class Superseded(HealthnerError):
    """A later-staged night of the day is already committed; this older one is not published over it."""


@dataclass(frozen=True)
class Published:
    """What a publish did: also what the DAG's publish task returns as its asset-event extra."""

    dt: str
    version: str
    rows: dict[str, int]
    lines_read: int
    model_version: str
    already: bool = False  # the night was already recorded: a retry after the commit


def with_day(table: pa.Table, dt: str, night: str) -> pa.Table:
    """The rows as published: the night that wrote them and their day (the partition column)."""
    rows = table.num_rows
    return table.append_column(NIGHT_COLUMN, pa.array([night] * rows, pa.string())).append_column(
        "dt", pa.array([dt] * rows, pa.string()))


def commit_day(warehouse: str, name: str, rows: pa.Table, dt: str, night: str, metadata: dict[str, str]) -> int:
    """Replace day `dt` of table `name` with `rows` unless it already holds the day from this night;
    the table version that holds it. Superseded if a later-staged night holds the day."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError

    options = storage_options(warehouse)
    for _ in range(COMMIT_TRIES):
        table = load_table(warehouse, name)
        if table is None:
            try:
                DeltaTable.create(table_uri(warehouse, name), rows.schema, partition_by=["dt"], mode="ignore",
                                  configuration=TABLE_CONFIG, storage_options=options)
            except CommitFailedError:  # another night created it first
                pass
            continue
        nights = day_stats(table).get(dt, (set(),))[0]
        if nights == {night}:
            return table.version()
        if nights and max(filter(None, nights)) > night:
            raise Superseded(f"{name} dt={dt}: night {max(filter(None, nights))} is committed, staged after {night}")
        try:
            write_deltalake(table, rows, mode="overwrite", predicate=f"dt = '{dt}'",
                            commit_properties=CommitProperties(custom_metadata=metadata))
            if rows.num_rows == 0:  # no files carry the night: the commit itself is the answer
                return load_table(warehouse, name).version()
        except CommitFailedError as exc:
            logger.info("%s dt=%s: a concurrent commit won (%s); trying again", name, dt, exc)
    raise PublishError(f"{name} dt={dt}: {COMMIT_TRIES} commits lost a race with other writers; publish again")


def night_record(dt: str, night: str, manifest: dict, rows: dict[str, int], versions: dict[str, int],
                 model_version: str) -> pa.Table:
    record = {"dt": dt, NIGHT_COLUMN: night, "model_version": model_version, "lines_read": int(manifest["lines_read"]),
              "published_at": datetime.now(UTC), "inbox_files": list(manifest.get("files", [])),
              **{f"{name}_rows": rows[name] for name in DATASETS},
              **{f"{name}_version": versions[name] for name in DATASETS}}
    return pa.Table.from_pylist([record], schema=NIGHTS_SCHEMA)


def model_version_of(tables: dict[str, pa.Table]) -> str:
    """The model the night was tagged with (its articles' model_version; one per night)."""
    versions = sorted(set(tables["articles"].column("model_version").to_pylist()) - {None})
    return ",".join(versions)


def published_of(record: dict, already: bool) -> Published:
    rows = {name: int(record[f"{name}_rows"]) for name in DATASETS}
    return Published(record["dt"], record[NIGHT_COLUMN], rows, int(record["lines_read"]), record["model_version"], already)


def vanished(warehouse: str, dt: str, night: str, version_dir: str, exc: FileNotFoundError) -> HealthnerError:
    """Why a staged night's files disappeared while it was being read: a newer night of the day was
    published meanwhile and cleaned the older tries away (Superseded, as if it had been seen first),
    or something else removed them (named)."""
    record = read_night(warehouse, dt)
    if record is not None and record[NIGHT_COLUMN] > night:
        return Superseded(f"dt={dt}: night {record[NIGHT_COLUMN]} was published while {night} was being read")
    return PublishError(f"{version_dir}: staged files vanished while publishing ({exc.filename or exc})")


def publish_day(nightly: NightlyParams, version_dir: str) -> Published:
    """Publish one checked, staged night of a day (see the module docstring). Idempotent: run again
    after the record is written it only cleans up and reports the published counts (`already`)."""
    warehouse = nightly.warehouse_dir
    fs, root = open_root(warehouse)
    _, version_dir = open_root(version_dir)
    dt, night = version_of(version_dir)
    if version_dir != f"{staging_dir(root, dt)}/{night}":
        raise PublishError(f"{version_dir} is not a staging folder of the warehouse {root}")
    record = read_night(warehouse, dt)
    if record is not None and record[NIGHT_COLUMN] >= night:
        if record[NIGHT_COLUMN] > night:
            raise Superseded(f"dt={dt}: night {record[NIGHT_COLUMN]} is published, staged after {night}")
        clean_staging(fs, root, dt, night, nightly)
        logger.info("dt=%s night %s was already published", dt, night)
        return published_of(record, already=True)
    try:
        manifest, tables = staged_tables(fs, version_dir)
    except FileNotFoundError as exc:
        raise vanished(warehouse, dt, night, version_dir, exc) from exc
    fault_point("publish.verified")
    model_version = model_version_of(tables)
    metadata = {
        f"{METADATA_PREFIX}dt": dt, f"{METADATA_PREFIX}night": night, f"{METADATA_PREFIX}model_version": model_version
    }
    versions = {}
    for name in DATASETS:
        versions[name] = commit_day(warehouse, name, with_day(tables[name], dt, night), dt, night, metadata)
        fault_point(f"publish.committed_{name}")
    rows = {name: tables[name].num_rows for name in DATASETS}
    commit_day(warehouse, NIGHTS, night_record(dt, night, manifest, rows, versions, model_version), dt, night, metadata)
    fault_point("publish.recorded")
    logger.info("published dt=%s night %s: %s", dt, night, rows)
    clean_staging(fs, root, dt, night, nightly)
    return Published(dt, night, rows, int(manifest["lines_read"]), model_version)
