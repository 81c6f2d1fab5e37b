"""Query the published Parquet tables with DuckDB: `entities`, `articles` and `rejects` as views."""

from __future__ import annotations

import duckdb

TABLES = ("entities", "articles", "rejects")


def connect(warehouse: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per hive-partitioned dataset found under `warehouse`."""
    con = duckdb.connect()
    root = warehouse.rstrip("/")
    for table in TABLES:
        pattern = f"{root}/{table}/*/*.parquet"
        try:
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
            )
        except duckdb.IOException:
            continue  # nothing published yet for this table
    return con


def run_query(warehouse: str, sql: str) -> str:
    """The result of `sql` as a printable table."""
    return str(connect(warehouse).sql(sql))
