"""Query the published Delta tables with DuckDB: `entities`, `articles`, `rejects` and `nights` as views.

Each view scans `DeltaTable(...).to_pyarrow_dataset()` of the recorded night of every day, read
once when the connection is made, so one connection sees one night of every day whatever is being
published meanwhile. `as_of` (a `nights` table version, or an ISO timestamp) reads the warehouse as
it was then. DuckDB's own `delta` extension is not used: it is downloaded at run time, so it does
not work offline. SQL comes from the user; values are never pasted into it.
"""

from __future__ import annotations

import duckdb

from healthner.errors import HealthnerError
from healthner.nightly.warehouse import DATASETS, NIGHTS, day_sources, load_table, read_nights

TABLES = (*DATASETS, NIGHTS)


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
    con.register(NIGHTS, load_table(warehouse, NIGHTS, version).to_pyarrow_dataset())
    return con


def run_query(warehouse: str, sql: str, as_of: str | None = None) -> str:
    """The result of `sql` as a printable table."""
    con = connect(warehouse, as_of)
    try:
        return str(con.sql(sql))
    except duckdb.Error as exc:
        raise QueryFailed(f"query failed: {exc}") from exc
