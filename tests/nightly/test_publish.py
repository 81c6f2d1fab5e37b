"""Publishing a day: retries after the commit, an older night arriving late, two publishes of one
day at once, what is left behind, and reading the warehouse with DuckDB (real files throughout)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from healthner.errors import HealthnerError
from healthner.nightly.checks import check_version
from healthner.nightly.publish import DayLocked, Superseded, publish_day
from healthner.nightly.query import EmptyWarehouse, QueryFailed, connect, run_query
from healthner.nightly.warehouse import PublishError, read_day, read_pointer
from tests.nightly.nights import ARTICLES, DAY, OTHER_DAY, night_params, publish_day_checked, stage_and_tag, write_inbox


def versions(warehouse: Path, dt: str = DAY) -> list[str]:
    folder = warehouse / "_versions" / f"dt={dt}"
    return sorted(p.name for p in folder.iterdir() if p.name != "current") if folder.exists() else []


def rows(warehouse: str, dt: str = DAY) -> dict[str, int]:
    return {name: table.num_rows for name, table in read_day(warehouse, dt).tables.items()}


def test_publish_retried_after_its_commit_reports_the_published_counts(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES, extra=["not json"])
    folder = stage_and_tag(params, DAY)
    first = publish_day_checked(params, folder)
    pointer = read_pointer(params.nightly.warehouse_dir, DAY)
    again = publish_day(params.nightly, folder)  # the task retried after the swap: no PublishError
    assert again.already and not first.already
    assert (again.rows, again.lines_read, again.version) == (first.rows, first.lines_read, first.version)
    assert read_pointer(params.nightly.warehouse_dir, DAY) == pointer  # nothing published twice


def test_an_older_night_never_replaces_a_newer_one(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES)
    older = stage_and_tag(params, DAY)
    write_inbox(tmp_path, DAY, ARTICLES[1:])  # the inbox corrected; a later run stages it
    newer = stage_and_tag(params, DAY, version="v2")
    check_version(params.nightly.warehouse_dir, older)
    publish_day_checked(params, newer)
    with pytest.raises(Superseded):
        publish_day(params.nightly, older)  # the earlier run finishes last: fenced off
    assert rows(params.nightly.warehouse_dir)["articles"] == 2
    assert read_pointer(params.nightly.warehouse_dir, DAY)["version"] == Path(newer).name


def test_a_publish_waits_for_the_days_lock(tmp_path: Path) -> None:
    params = night_params(tmp_path, publish_lock_timeout_s=1)
    write_inbox(tmp_path, DAY, ARTICLES)
    folder = stage_and_tag(params, DAY)
    check_version(params.nightly.warehouse_dir, folder)
    lock = tmp_path / "warehouse" / "_locks" / f"dt={DAY}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another publish of the day, in the middle of its commit
        with pytest.raises(DayLocked):
            publish_day(params.nightly, folder)
        assert read_pointer(params.nightly.warehouse_dir, DAY) is None
    assert publish_day(params.nightly, folder).rows["articles"] == 3
    assert issubclass(DayLocked, HealthnerError)


def test_overlapping_publishes_of_one_day_leave_one_readable_version(tmp_path: Path) -> None:
    """Four checked versions published at once (each its own lock handle, as separate workers
    would have): the newest wins, each table is one flat version, and the pointer, DuckDB and the
    plain hive paths all read the same rows."""
    params = night_params(tmp_path)
    folders = []
    for count in (3, 2, 3, 1):
        write_inbox(tmp_path, DAY, ARTICLES[:count])
        folders.append(stage_and_tag(params, DAY))
        check_version(params.nightly.warehouse_dir, folders[-1])

    def attempt(folder: str) -> str:
        try:
            return publish_day(params.nightly, folder).version
        except Superseded:  # a newer one got there first: which ones depends on the interleaving
            return "superseded"

    with ThreadPoolExecutor(len(folders)) as pool:
        outcomes = list(pool.map(attempt, reversed(folders)))
    assert outcomes[0] == Path(folders[-1]).name
    warehouse = tmp_path / "warehouse"
    pointer = read_pointer(str(warehouse), DAY)
    assert pointer["version"] == Path(folders[-1]).name  # the newest, whatever the order
    plain = ds.dataset(warehouse / "articles", format="parquet", partitioning="hive").to_table().num_rows
    ducked = connect(str(warehouse)).sql("SELECT count(*) FROM articles").fetchall()[0][0]
    assert plain == ducked == rows(str(warehouse))["articles"] == 1
    assert not list((warehouse / "articles").rglob("articles"))  # never a table nested in a table


def test_leftovers_are_cleaned_on_success_and_after_their_age(tmp_path: Path) -> None:
    params = night_params(tmp_path, keep_replaced_s=3600)
    warehouse = tmp_path / "warehouse"
    write_inbox(tmp_path, OTHER_DAY, ARTICLES)
    abandoned_other_day = stage_and_tag(params, OTHER_DAY)  # a failed night of a day never re-run
    write_inbox(tmp_path, DAY, ARTICLES)
    failed_try = stage_and_tag(params, DAY)  # tagged, then its check or publish task died
    assert list(Path(failed_try).glob("_shards/*.parquet"))  # full article text
    first = publish_day_checked(params, stage_and_tag(params, DAY))
    assert versions(warehouse) == [first.version]  # the failed try is gone with its article text
    assert not list(warehouse.rglob("_shards")) or Path(abandoned_other_day, "_shards").exists()
    second = publish_day_checked(params, stage_and_tag(params, DAY))
    assert versions(warehouse) == [first.version, second.version]  # the replaced one kept for readers
    expire = night_params(tmp_path, keep_replaced_s=0, keep_unpublished_s=0)
    publish_day(expire.nightly, str(warehouse / "_versions" / f"dt={DAY}" / second.version))  # a retry
    assert versions(warehouse) == [second.version]
    assert not (warehouse / "_versions" / f"dt={OTHER_DAY}").exists()  # aged out, empty folder gone
    assert not list(warehouse.rglob("_shards")) and not list(warehouse.rglob(".*"))


def test_parts_changed_after_the_check_are_not_published(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES)
    folder = Path(stage_and_tag(params, DAY))
    check_version(params.nightly.warehouse_dir, str(folder))
    part = next((folder / "entities").glob("*.parquet"))
    part.write_bytes(part.read_bytes() + b"\0")
    with pytest.raises(PublishError, match="changed after the check"):
        publish_day(params.nightly, str(folder))


def test_query_on_an_empty_warehouse_says_it_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyWarehouse, match="empty"):
        run_query(str(tmp_path / "nothing-yet"), "SELECT count(*) FROM entities")
    assert issubclass(EmptyWarehouse, HealthnerError)


def test_query_takes_any_warehouse_path_and_reports_bad_sql(tmp_path: Path) -> None:
    root = tmp_path / "it's a \"path\"; DROP"
    params = night_params(root)
    write_inbox(root, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    out = run_query(params.nightly.warehouse_dir, "SELECT dt, count(*) AS n FROM entities GROUP BY dt")
    assert "2026-11-24" in out and "3" in out
    with pytest.raises(QueryFailed):
        run_query(params.nightly.warehouse_dir, "SELEC nothing")
    with pytest.raises(QueryFailed):
        run_query(params.nightly.warehouse_dir, "SELECT no_such_column FROM entities")


def test_plain_hive_paths_read_the_published_version(tmp_path: Path) -> None:
    """pandas/Spark/DuckDB users reading `<table>/` directly get the current version, with dt."""
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    write_inbox(tmp_path, DAY, ARTICLES[:2])
    publish_day_checked(params, stage_and_tag(params, DAY))  # the older version is still on disk
    warehouse = tmp_path / "warehouse"
    glob = str(warehouse / "articles" / "*" / "*.parquet")
    plain = duckdb.execute("SELECT count(*), min(dt) FROM read_parquet(?, hive_partitioning = true)", [glob]).fetchall()[0]
    assert plain == (2, __import__("datetime").date(2026, 11, 24))
    assert json.loads((warehouse / "_published" / f"dt={DAY}.json").read_text())["rows"]["articles"] == 2
    assert os.path.islink(warehouse / "articles" / f"dt={DAY}")
    assert time.time() - read_pointer(str(warehouse), DAY)["published_at"] < 600


def test_an_object_store_warehouse_publishes_through_the_pointer_alone(tmp_path: Path) -> None:
    """fsspec's memory:// stands in for s3://: no links, no lock, the same versions and pointer."""
    warehouse = f"memory://healthner-{tmp_path.name}"
    params = night_params(tmp_path, warehouse_dir=warehouse)
    write_inbox(tmp_path, DAY, ARTICLES)
    first = publish_day_checked(params, stage_and_tag(params, DAY))
    write_inbox(tmp_path, DAY, ARTICLES[:1])
    second = publish_day_checked(params, stage_and_tag(params, DAY))
    day = read_day(warehouse, DAY)
    assert (day.version, rows(warehouse)["articles"]) == (second.version, 1) and first.version < second.version
