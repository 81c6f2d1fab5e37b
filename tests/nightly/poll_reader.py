"""A reader polling one day of the warehouse while it is republished (run as a script by the crash
test): each read is one JSON line, the row counts of the three tables or the error it met.

    python poll_reader.py WAREHOUSE DT STOP_FILE OUT_FILE

`pyarrow` reads the day through deltalake (`read_day`), `duckdb` through `healthner query`'s views.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from healthner.nightly.query import connect
from healthner.nightly.warehouse import DATASETS, read_day

POLL_S = 0.002


def via_pyarrow(warehouse: str, dt: str) -> list[int] | None:
    day = read_day(warehouse, dt)
    return None if day is None else [day.tables[name].num_rows for name in DATASETS]


def via_duckdb(warehouse: str, dt: str) -> list[int]:
    con = connect(warehouse)
    return [con.execute(f"SELECT count(*) FROM {name} WHERE dt = ?", [dt]).fetchall()[0][0] for name in DATASETS]


def main(warehouse: str, dt: str, stop: Path, out: Path) -> None:
    with out.open("w", encoding="utf-8") as fh:
        while not stop.exists():
            for name, read in (("pyarrow", via_pyarrow), ("duckdb", via_duckdb)):
                try:
                    record = {"via": name, "rows": read(warehouse, dt)}
                except Exception as exc:  # noqa: BLE001 (every failure is an observation)
                    record = {"via": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            time.sleep(POLL_S)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
