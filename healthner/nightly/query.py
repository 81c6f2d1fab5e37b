"""Query the published Parquet tables with DuckDB: `entities`, `articles` and `rejects` as views.

The views list the files each day's pointer names when the connection is made, so one connection
sees one version of every day, whatever is being published meanwhile. File paths are handed to
DuckDB as values, never pasted into SQL.
"""

from __future__ import annotations

import duckdb

from healthner.errors import HealthnerError
from healthner.nightly.warehouse import DATASETS, POINTERS_DIR, current_files

TABLES = DATASETS


class EmptyWarehouse(HealthnerError):
    """Nothing has been published to the warehouse yet."""


class QueryFailed(HealthnerError):
    """DuckDB refused the SQL (syntax, an unknown column or table)."""


def connect(warehouse: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table over every published day's current files."""
    files = current_files(warehouse)
    if not any(files.values()):
        raise EmptyWarehouse(f"the warehouse {warehouse} is empty: no day published yet (no {POINTERS_DIR}/dt=*.json)")
    con = duckdb.connect()
    for table in TABLES:
        relation = con.read_parquet(files[table], hive_partitioning=True, union_by_name=True)
        relation.create_view(table)
    return con


def run_query(warehouse: str, sql: str) -> str:
    """The result of `sql` as a printable table."""
    con = connect(warehouse)
    try:
        return str(con.sql(sql))
    except duckdb.Error as exc:
        raise QueryFailed(f"query failed: {exc}") from exc
