"""Query the published Delta tables with DuckDB: `entities`, `articles`, `rejects` and `nights` as views.

Each view scans the Arrow dataset (warehouse.arrow_dataset) of the recorded night of every day, read
once when the connection is made, so one connection sees one night of every day whatever is being
published meanwhile. `as_of` (a `nights` table version, or an ISO timestamp) reads the warehouse as
it was then. DuckDB's own `delta` extension is not used: it is downloaded at run time, so it does
not work offline. SQL comes from the user; values are never pasted into it.

A result is printed as DuckDB's table (`table`, truncated for a terminal), or written whole as
`csv`, `json` (an array of row objects) or `parquet`, to stdout or to a file (replaced in one
rename, so a reader never sees half of it).
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from healthner.errors import HealthnerError
from healthner.io import json_text
from healthner.nightly.warehouse import DATASETS, NIGHTS, arrow_dataset, day_sources, load_table, read_nights

TABLES = (*DATASETS, NIGHTS)
QUERY_FORMATS = ("table", "csv", "json", "parquet")


class EmptyWarehouse(HealthnerError):
    """Nothing has been published to the warehouse yet."""


class QueryFailed(HealthnerError):
    """DuckDB refused the SQL (syntax, an unknown column or table)."""


def parse_as_of(as_of: str | None) -> int | str | None:
    """A `nights` table version (a number) or a timestamp (ISO 8601), as deltalake takes them."""
    if as_of is None:
        return None
    return int(as_of) if as_of.strip().isdigit() else as_of.strip()


def connect(warehouse: str, as_of: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table over every published day's recorded night."""
    version = parse_as_of(as_of)
    records = read_nights(warehouse, version)
    if not records:
        raise EmptyWarehouse(f"the warehouse {warehouse} has no published day" + (f" as of {as_of}" if as_of else ""))
    con = duckdb.connect()
    for table in DATASETS:
        sources = day_sources(warehouse, table, records, as_of=version is not None)
        for index, source in enumerate(sources):
            con.register(f"_{table}_{index}", source)
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(
            f"SELECT * FROM _{table}_{index}" for index in range(len(sources))))
    con.register(NIGHTS, arrow_dataset(warehouse, NIGHTS, load_table(warehouse, NIGHTS, version)))
    return con


def run_query(warehouse: str, sql: str, format: str = "table", output: Path | None = None, as_of: str | None = None) -> str:
    """The result of `sql` in `format` (as of a `nights` version or timestamp): the text itself, or with
    `output` a line saying where it went."""
    if format not in QUERY_FORMATS:
        raise QueryFailed(f"--format {format}: one of {', '.join(QUERY_FORMATS)}")
    if format == "parquet" and output is None:
        raise QueryFailed("--format parquet writes a file: give --output FILE")
    con = connect(warehouse, as_of)
    try:
        relation = con.sql(sql)
        if format == "table":
            data: str | bytes = "" if relation is None else str(relation)
            rows = None
        else:
            table = relation.arrow() if relation is not None else pa.table({})
            table = table.read_all() if isinstance(table, pa.RecordBatchReader) else table
            data, rows = encoded(table, format), table.num_rows
    except duckdb.Error as exc:
        raise QueryFailed(f"query failed: {exc}") from exc
    if output is None:
        return data
    write_replacing(Path(output), data if isinstance(data, bytes) else data.encode("utf-8"))
    return f"table -> {output}" if rows is None else f"{rows} row(s) -> {output}"


def encoded(table: pa.Table, format: str) -> str | bytes:
    """`table` as CSV (header first) or JSON text, or Parquet bytes."""
    if format == "json":
        return json_text(table.to_pylist(), indent=1, default=str)
    sink = io.BytesIO()
    if format == "csv":
        pacsv.write_csv(table, sink)
        return sink.getvalue().decode("utf-8")
    pq.write_table(table, sink)
    return sink.getvalue()


def write_replacing(path: Path, data: bytes) -> None:
    """`data` into `path` through a temporary beside it and one rename; a failure names the path."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise QueryFailed(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        temporary.unlink(missing_ok=True)
