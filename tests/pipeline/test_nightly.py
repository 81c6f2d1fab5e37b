"""The real nightly DAG, end to end with `dag.test()`, on a temporary inbox and the tiny ensemble.

Runs, in order, on one warehouse: a night (good + every kind of bad line), the same night again
(replaced, no duplicates), the same night with a missing model (a shard fails before publish:
the published partition must stay exactly as it was).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
import yaml

from healthner.config import load_params
from healthner.nightly.batch import build_sample_inbox
from healthner.nightly.checks import check_published
from healthner.nightly.inbox import DUPLICATE_ID, EMPTY_TEXT, INVALID_JSON, INVALID_UTF8, MISSING_ID, TOO_LONG
from healthner.nightly.warehouse import read_manifest

REPO = Path(__file__).resolve().parents[2]
DT = "2026-11-24"
LOGICAL_DATE = datetime(2026, 11, 24, tzinfo=timezone.utc)
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


def write_params(path: Path, tiny_ensemble: Path, root: Path, model_dir: Path) -> Path:
    base = load_params(REPO / "params.yaml")
    params = base.with_updates(
        prepare={"output_dir": str(tiny_ensemble.parents[1] / "data" / "prepared")},
        nightly={"inbox_dir": str(root / "inbox"), "warehouse_dir": str(root / "warehouse"),
                 "model_dir": str(model_dir), "fallback_model_dir": str(model_dir), "shards": 2, "retries": 0, "max_article_chars": MAX_CHARS,
                 "chunk_articles": 3, "sample_articles": 8, "sample_date": DT},
    )
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    return path


def run_night(params_file: Path) -> str:
    """One `dag.test()` run of the real DAG file with these params; returns the run's state."""
    from airflow.dag_processing.dagbag import DagBag

    previous = os.environ.get("HEALTHNER_PARAMS")
    os.environ["HEALTHNER_PARAMS"] = str(params_file)  # read by the DAG file and by every task
    try:
        dag = DagBag(dag_folder=str(REPO / "dags")).dags["healthner_nightly"]
        state = dag.test(logical_date=LOGICAL_DATE).state
    finally:
        os.environ.pop("HEALTHNER_PARAMS") if previous is None else os.environ.update(HEALTHNER_PARAMS=previous)
    return getattr(state, "value", state)


def inbox_texts(inbox_day: Path) -> dict[str, str]:
    texts = {}
    for line in (inbox_day / "articles-000.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts[record["article_id"]] = record["text"]
    return texts


def partition_files(warehouse: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(warehouse)): p.read_bytes()
        for dataset in ("entities", "articles", "rejects")
        for p in sorted((warehouse / dataset / f"dt={DT}").glob("*.parquet"))
    }


def entities_sql(warehouse: Path) -> str:
    return f"read_parquet('{warehouse}/entities/dt=*/*.parquet', hive_partitioning = true)"


@pytest.fixture(scope="module")
def night(tmp_path_factory, tiny_ensemble: Path, airflow_db: Path) -> dict:
    root = tmp_path_factory.mktemp("night")
    params_file = write_params(root / "params.yaml", tiny_ensemble, root, tiny_ensemble)
    build_sample_inbox(load_params(params_file))
    day = root / "inbox" / f"dt={DT}"
    texts = inbox_texts(day)
    lines, reasons = bad_lines(next(iter(texts)))
    (day / BAD_FILE).write_bytes(b"\n".join(lines) + b"\n")
    state = run_night(params_file)
    return {"root": root, "params": params_file, "texts": texts, "reasons": reasons, "state": state,
            "warehouse": root / "warehouse", "lines": len(texts) + sum(1 for line in lines if line.strip())}


def test_night_publishes_entities_with_true_offsets(night: dict, tiny_ensemble: Path) -> None:
    assert night["state"] == "success"
    entities = ds.dataset(night["warehouse"] / "entities", format="parquet", partitioning="hive").to_table()
    assert entities.num_rows > 0
    version = json.loads((tiny_ensemble / "ensemble.json").read_text())["model_version"]
    for row in entities.to_pylist():
        assert night["texts"][row["article_id"]][row["start"] : row["end"]] == row["text"]
        assert row["model_version"] == version and str(row["dt"]) == DT
    per_type = duckdb.sql(f"SELECT type, count(*) FROM {entities_sql(night['warehouse'])} GROUP BY type").fetchall()
    assert sum(n for _, n in per_type) == entities.num_rows


def test_every_bad_line_is_a_reject_and_counts_reconcile(night: dict) -> None:
    warehouse = night["warehouse"]
    rejects = ds.dataset(warehouse / "rejects", format="parquet", partitioning="hive").to_table().to_pylist()
    assert {r["location"]: r["reason"] for r in rejects} == night["reasons"]
    articles = duckdb.sql(
        f"SELECT count(*), sum(n_entities) FROM read_parquet('{warehouse}/articles/dt=*/*.parquet', hive_partitioning = true)"
    ).fetchall()[0]
    assert articles[0] == len(night["texts"])  # every good article, the duplicate's first occurrence included
    assert articles[0] + len(rejects) == night["lines"] == read_manifest(str(warehouse), DT)["lines_read"]
    assert articles[1] == duckdb.sql(f"SELECT count(*) FROM {entities_sql(warehouse)}").fetchall()[0][0]
    assert check_published(str(warehouse), DT).success


def test_rerun_replaces_the_day_without_duplicates(night: dict) -> None:
    warehouse = night["warehouse"]
    before = duckdb.sql(f"SELECT count(*) FROM {entities_sql(warehouse)}").fetchall()[0][0]
    assert run_night(night["params"]) == "success"
    after = duckdb.sql(f"SELECT count(*), count(DISTINCT (article_id, start, \"end\", type)) FROM {entities_sql(warehouse)}")
    assert after.fetchall()[0] == (before, before)
    assert not list((warehouse / "_replaced").rglob("*.parquet"))  # old partitions deleted after the swap


def test_failed_night_leaves_the_published_day_intact(night: dict, tiny_ensemble: Path) -> None:
    warehouse = night["warehouse"]
    published = partition_files(warehouse)
    broken = write_params(night["root"] / "broken.yaml", tiny_ensemble, night["root"], night["root"] / "no-model")
    assert run_night(broken) == "failed"  # every shard fails to load its model: publish never runs
    assert partition_files(warehouse) == published
    assert check_published(str(warehouse), DT).success
