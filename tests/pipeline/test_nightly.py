"""The real nightly DAG, end to end with `dag.test()`, on a temporary inbox and the tiny ensemble.

Runs, in order, on one warehouse: a night (good + every kind of bad line), the same night again
(replaced, no duplicates), the same night with a missing model (the run fails before publish:
the published partition must stay exactly as it was). Each run is the one the DAG's own timetable
schedules for the day; other tests trigger a given day by the `dt` param, and fail every task once.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from deltalake import DeltaTable

from healthner.config import load_params
from healthner.nightly.batch import build_sample_inbox
from healthner.nightly.faults import FAULTS_ENV, arm
from healthner.nightly.inbox import DUPLICATE_ID, EMPTY_TEXT, INVALID_JSON, INVALID_UTF8, MISSING_ID, TOO_LONG
from healthner.nightly.warehouse import NIGHTS, load_table, read_day, read_night
from tests.nightly.nights import check_published
from tests.pipeline.dag_runs import load_dag, run_night, scheduled_run

REPO = Path(__file__).resolve().parents[2]
DT = "2026-11-24"
NEXT_DAY = "2026-11-25"
TASK_BOUNDARIES = [f"{task}.{when}" for task in ("discover", "stage", "tag", "check", "publish")
                   for when in ("start", "done")] + ["publish.committed_articles", "publish.recorded"]
MAX_CHARS = 4000
BAD_FILE = "articles-bad.jsonl"
pytestmark = pytest.mark.slow


def bad_lines(good_id: str) -> tuple[list[bytes], dict[str, str]]:
    """One line per reject kind (plus a blank line, which is not a record); reason per line number."""
    lines = [
        json.dumps({"article_id": "empty-1", "text": ""}).encode(),
        json.dumps({"article_id": "blank-1", "text": " \n\t　"}).encode(),
        '{"article_id": "broken-1", "text": "寫到一半'.encode(),  # invalid JSON (cut off)
        b"",
        json.dumps({"text": "沒有編號的文章。"}, ensure_ascii=False).encode(),
        json.dumps({"article_id": good_id, "text": "重複的編號。"}, ensure_ascii=False).encode(),
        b'{"article_id": "latin1-1", "text": "caf\xe9 \xb5g"}',
        json.dumps({"article_id": "long-1", "text": "長" * (MAX_CHARS + 1)}, ensure_ascii=False).encode(),
    ]
    reasons = {
        f"{BAD_FILE}:1": EMPTY_TEXT, f"{BAD_FILE}:2": EMPTY_TEXT, f"{BAD_FILE}:3": INVALID_JSON,
        f"{BAD_FILE}:5": MISSING_ID, f"{BAD_FILE}:6": DUPLICATE_ID, f"{BAD_FILE}:7": INVALID_UTF8,
        f"{BAD_FILE}:8": TOO_LONG,
    }
    return lines, reasons


def write_params(path: Path, tiny_ensemble: Path, root: Path, model_dir: Path, warehouse: str = "warehouse") -> Path:
    base = load_params(REPO / "params.yaml")
    params = base.with_updates(
        prepare={"output_dir": str(tiny_ensemble.parents[1] / "data" / "prepared")},
        nightly={"inbox_dir": str(root / "inbox"), "warehouse_dir": str(root / warehouse),
                 "model_dir": str(model_dir), "fallback_model_dir": str(model_dir), "shards": 2,
                 "max_article_chars": MAX_CHARS,
                 "chunk_articles": 3, "sample_articles": 8, "sample_date": DT},
    )
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    return path


def inbox_texts(inbox_day: Path) -> dict[str, str]:
    texts = {}
    for line in (inbox_day / "articles-000.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts[record["article_id"]] = record["text"]
    return texts


def partition_files(warehouse: Path) -> dict[str, bytes]:
    """The day's data files in each Delta table's current version, with their bytes."""
    return {
        uri: Path(uri).read_bytes()
        for dataset in ("entities", "articles", "rejects")
        for uri in sorted(DeltaTable(str(warehouse / dataset)).file_uris(partition_filters=[("dt", "=", DT)]))
    }


def duck(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB over the Delta tables as any user reads them (deltalake's datasets, no healthner code)."""
    con = duckdb.connect()
    for name in ("entities", "articles", "rejects"):
        con.register(name, DeltaTable(str(warehouse / name)).to_pyarrow_dataset())
    return con


@pytest.fixture(scope="module")
def night(tmp_path_factory, tiny_ensemble: Path, airflow_db: Path) -> dict:
    root = tmp_path_factory.mktemp("night")
    params_file = write_params(root / "params.yaml", tiny_ensemble, root, tiny_ensemble)
    build_sample_inbox(load_params(params_file))
    day = root / "inbox" / f"dt={DT}"
    texts = inbox_texts(day)
    lines, reasons = bad_lines(next(iter(texts)))
    (day / BAD_FILE).write_bytes(b"\n".join(lines) + b"\n")
    next_day = root / "inbox" / f"dt={NEXT_DAY}"  # articles of the day that has just begun: not tonight's
    next_day.mkdir()
    (next_day / "articles-000.jsonl").write_text(
        json.dumps({"article_id": "n1", "text": "明天的頭痛。"}, ensure_ascii=False)
    )
    state = run_night(params_file)
    return {"root": root, "params": params_file, "texts": texts, "reasons": reasons, "state": state,
            "warehouse": root / "warehouse", "lines": len(texts) + sum(1 for line in lines if line.strip())}


def test_night_publishes_entities_with_true_offsets(night: dict, tiny_ensemble: Path) -> None:
    assert night["state"] == "success"
    entities = DeltaTable(str(night["warehouse"] / "entities")).to_pyarrow_table()
    assert entities.num_rows > 0
    version = json.loads((tiny_ensemble / "ensemble.json").read_text())["model_version"]
    for row in entities.to_pylist():
        assert night["texts"][row["article_id"]][row["start"] : row["end"]] == row["text"]
        assert row["model_version"] == version and str(row["dt"]) == DT
    per_type = duck(night["warehouse"]).sql("SELECT type, count(*) FROM entities GROUP BY type").fetchall()
    assert sum(n for _, n in per_type) == entities.num_rows


def test_every_bad_line_is_a_reject_and_counts_reconcile(night: dict) -> None:
    warehouse = night["warehouse"]
    rejects = DeltaTable(str(warehouse / "rejects")).to_pyarrow_table().to_pylist()
    assert {r["location"]: r["reason"] for r in rejects} == night["reasons"]
    articles = duck(warehouse).sql("SELECT count(*), sum(n_entities) FROM articles").fetchall()[0]
    assert articles[0] == len(night["texts"])  # every good article, the duplicate's first occurrence included
    assert articles[0] + len(rejects) == night["lines"] == read_night(str(warehouse), DT)["lines_read"]
    assert articles[1] == duck(warehouse).sql("SELECT count(*) FROM entities").fetchall()[0][0]
    assert check_published(str(warehouse), DT).success


def test_rerun_replaces_the_day_without_duplicates(night: dict) -> None:
    warehouse = night["warehouse"]
    before = duck(warehouse).sql("SELECT count(*) FROM entities").fetchall()[0][0]
    assert run_night(night["params"]) == "success"
    after = duck(warehouse).sql('SELECT count(*), count(DISTINCT (article_id, start, "end", type)) FROM entities')
    assert after.fetchall()[0] == (before, before)
    assert not list(warehouse.rglob("_shards"))  # no article text left behind


def test_failed_night_leaves_the_published_day_intact(night: dict, tiny_ensemble: Path) -> None:
    warehouse = night["warehouse"]
    published = partition_files(warehouse)
    broken = write_params(night["root"] / "broken.yaml", tiny_ensemble, night["root"], night["root"] / "no-model")
    assert run_night(broken) == "failed"  # no model: the run fails at its first task, publish never runs
    assert partition_files(warehouse) == published
    assert check_published(str(warehouse), DT).success


def table_rows(warehouse: Path, dt: str = DT) -> dict[str, list[tuple]]:
    day = read_day(str(warehouse), dt)
    return {name: sorted((tuple(row.items()) for row in table.to_pylist()), key=repr) for name, table in day.tables.items()}


def test_the_scheduled_run_tags_the_day_that_has_just_ended(night: dict) -> None:
    run_after, interval = scheduled_run(load_dag(), DT)
    assert run_after == datetime(2026, 11, 25, tzinfo=UTC)  # it starts at the end of the day...
    assert interval.start.date() == date.fromisoformat(DT)  # ...and its data interval is that day
    assert night["state"] == "success"
    assert read_night(str(night["warehouse"]), DT) is not None
    assert read_night(str(night["warehouse"]), NEXT_DAY) is None  # the day just begun is left alone


def test_a_manual_run_tags_the_day_given_as_its_dt_param(night: dict) -> None:
    assert run_night(night["params"], conf={"dt": NEXT_DAY}) == "success"
    day = read_day(str(night["warehouse"]), NEXT_DAY)
    assert day.tables["articles"].column("article_id").to_pylist() == ["n1"]
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="date"):  # not a day: refused before the run starts
        run_night(night["params"], conf={"dt": "24/11/2026"})


def test_a_night_failed_once_at_every_task_boundary_publishes_once_identically(night: dict, tiny_ensemble: Path) -> None:
    """Every task fails once, before and after its work (publish also between its table commits and
    right after its night record), and is retried by Airflow: the night is recorded once, with the
    tables of an undisturbed night."""
    root = night["root"]
    params_file = write_params(root / "retried.yaml", tiny_ensemble, root, tiny_ensemble, warehouse="retried")
    faults = root / "faults"
    for point in TASK_BOUNDARIES:
        arm(faults, point)
    state = run_night(params_file, HEALTHNER_RETRIES="4", HEALTHNER_RETRY_DELAY_S="0", **{FAULTS_ENV: str(faults)})
    assert state == "success"
    assert not list(faults.iterdir())  # every boundary did fail once
    retried = root / "retried"
    records = [c for c in load_table(str(retried), NIGHTS).history() if c.get("operation") == "WRITE"]
    assert [c["healthner.night"] for c in records] == [read_night(str(retried), DT)["night"]]  # one commit, never a second
    assert not (retried / "_staging" / f"dt={DT}").exists()  # the abandoned stage try is gone
    assert table_rows(retried) == table_rows(night["warehouse"])
