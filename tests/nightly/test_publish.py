"""Publishing a day to the Delta tables: retries after the commit, an older night arriving late,
several publishes of one day at once, what each commit records, what is left behind, time travel,
and reading the warehouse with DuckDB (real Delta tables throughout; s3 through a moto server)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from healthner.cli import app
from healthner.errors import HealthnerError
from healthner.nightly.checks import check_version
from healthner.nightly.publish import Superseded, publish_day
from healthner.nightly.query import EmptyWarehouse, QueryFailed, connect, run_query
from healthner.nightly.warehouse import DATASETS, NIGHTS, PublishError, load_table, read_day, read_night
from tests.nightly.nights import ARTICLES, DAY, OTHER_DAY, night_params, publish_day_checked, stage_and_tag, write_inbox


def staged(warehouse: Path, dt: str = DAY) -> list[str]:
    folder = warehouse / "_staging" / f"dt={dt}"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def rows(warehouse: str, dt: str = DAY) -> dict[str, int]:
    return {name: table.num_rows for name, table in read_day(warehouse, dt).tables.items()}


def record_commits(warehouse: str) -> list[dict]:
    return [c for c in load_table(warehouse, NIGHTS).history() if c.get("operation") == "WRITE"]


def test_publish_retried_after_its_commit_reports_the_published_counts(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES, extra=["not json"])
    folder = stage_and_tag(params, DAY)
    first = publish_day_checked(params, folder)
    record = read_night(params.nightly.warehouse_dir, DAY)
    again = publish_day(params.nightly, folder)  # the task retried after the commit: no PublishError
    assert again.already and not first.already
    assert (again.rows, again.lines_read, again.version) == (first.rows, first.lines_read, first.version)
    assert read_night(params.nightly.warehouse_dir, DAY) == record and len(record_commits(params.nightly.warehouse_dir)) == 1
    assert asdict(first) == {"dt": DAY, "version": first.version, "rows": {"entities": 3, "articles": 3, "rejects": 1},
                             "lines_read": 4, "model_version": "v1", "already": False}  # the DAG task's asset extra


def test_every_commit_carries_the_day_the_night_and_the_model(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES)
    night = publish_day_checked(params, stage_and_tag(params, DAY, version="m-7")).version
    for name in (*DATASETS, NIGHTS):
        commits = [c for c in load_table(params.nightly.warehouse_dir, name).history() if c.get("operation") == "WRITE"]
        assert [(c["healthner.dt"], c["healthner.night"], c["healthner.model_version"]) for c in commits] == [
            (DAY, night, "m-7")], name
    record = read_night(params.nightly.warehouse_dir, DAY)
    assert record["model_version"] == "m-7" and record["articles_rows"] == 3
    assert record["published_at"] > datetime.now(UTC).replace(year=2000)


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
    assert read_night(params.nightly.warehouse_dir, DAY)["night"] == Path(newer).name


def test_overlapping_publishes_of_one_day_leave_the_newest_night(tmp_path: Path) -> None:
    """Four checked nights published at once: the newest wins in every table and in the record,
    and deltalake, DuckDB and healthner's reader read the same rows."""
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
    warehouse = str(tmp_path / "warehouse")
    assert read_night(warehouse, DAY)["night"] == Path(folders[-1]).name  # the newest, whatever the order
    for name in DATASETS:
        table = DeltaTable(f"{warehouse}/{name}").to_pyarrow_table()
        assert set(table.column("night").to_pylist()) <= {Path(folders[-1]).name}, name
    ducked = connect(warehouse).sql("SELECT count(*) FROM articles").fetchall()[0][0]
    assert DeltaTable(f"{warehouse}/articles").to_pyarrow_table().num_rows == ducked == rows(warehouse)["articles"] == 1


def test_staging_is_cleaned_on_success_and_after_its_age(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    warehouse = tmp_path / "warehouse"
    write_inbox(tmp_path, OTHER_DAY, ARTICLES)
    stage_and_tag(params, OTHER_DAY)  # a failed night of a day never re-run
    write_inbox(tmp_path, DAY, ARTICLES)
    failed_try = stage_and_tag(params, DAY)  # tagged, then its check or publish task died
    assert list(Path(failed_try).glob("_shards/*.parquet"))  # full article text
    publish_day_checked(params, stage_and_tag(params, DAY))
    assert staged(warehouse) == [] and staged(warehouse, OTHER_DAY) != []  # the day's tries are gone
    expire = night_params(tmp_path, keep_unpublished_s=0)
    publish_day_checked(expire, stage_and_tag(expire, DAY))
    assert not (warehouse / "_staging").exists() or not list((warehouse / "_staging").iterdir())
    assert not list(warehouse.rglob("_shards"))


def test_parts_changed_after_the_check_are_not_published(tmp_path: Path) -> None:
    params = night_params(tmp_path)
    write_inbox(tmp_path, DAY, ARTICLES)
    folder = Path(stage_and_tag(params, DAY))
    check_version(params.nightly.warehouse_dir, str(folder))
    part = next((folder / "entities").glob("*.parquet"))
    part.write_bytes(part.read_bytes() + b"\0")
    with pytest.raises(PublishError, match="changed after the check"):
        publish_day(params.nightly, str(folder))
    assert read_night(params.nightly.warehouse_dir, DAY) is None


def test_query_on_an_empty_warehouse_says_it_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyWarehouse, match="no published day"):
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


def test_query_as_of_reads_an_earlier_version(tmp_path: Path) -> None:
    """`healthner query --as-of`: a nights version or a timestamp gives the rows published then."""
    params = night_params(tmp_path)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(__import__("yaml").safe_dump(params.model_dump(mode="json", by_alias=True)), encoding="utf-8")
    write_inbox(tmp_path, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY, version="old"))
    first_version = load_table(params.nightly.warehouse_dir, NIGHTS).version()
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    write_inbox(tmp_path, DAY, ARTICLES[:1])
    publish_day_checked(params, stage_and_tag(params, DAY, version="new"))
    sql = "SELECT count(*) AS n, min(model_version) AS model FROM articles"

    def cli(*extra: str) -> str:
        done = CliRunner().invoke(app, ["query", sql, "--params", str(params_file), *extra])
        assert done.exit_code == 0, done.output
        return done.output

    assert "│     1 │ new" in cli()
    assert "│     3 │ old" in cli("--as-of", str(first_version))
    assert "│     3 │ old" in cli("--as-of", between)
    done = CliRunner().invoke(app, ["query", sql, "--params", str(params_file), "--as-of", "999"])
    assert done.exit_code == 1 and done.output.count("\n") == 1 and done.output.startswith("error: ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_s3_warehouse_publishes_delta_tables_by_conditional_put(tmp_path: Path, monkeypatch) -> None:
    """A real S3 protocol (a moto server on 127.0.0.1): the same commits, records and reads."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(key, value)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem(endpoint_url=f"http://127.0.0.1:{port}").mkdir("healthner")
        warehouse = "s3://healthner/warehouse"
        params = night_params(tmp_path, warehouse_dir=warehouse)
        write_inbox(tmp_path, DAY, ARTICLES)
        first = publish_day_checked(params, stage_and_tag(params, DAY))
        write_inbox(tmp_path, DAY, ARTICLES[:1])
        second = publish_day_checked(params, stage_and_tag(params, DAY))
        assert (read_day(warehouse, DAY).version, rows(warehouse)["articles"]) == (second.version, 1)
        assert first.version < second.version and "│     1 │" in run_query(warehouse, "SELECT count(*) AS n FROM articles")
        assert load_table(warehouse, "articles").version() == 2  # created, then two nights
    finally:
        server.stop()
