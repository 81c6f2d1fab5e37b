"""Every DAG file imports cleanly, parses light, and the nightly DAG has the shape the warehouse
relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.dag_constants import dag_constant

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3 dropped DagBag(include_examples=...): examples are off through
    # AIRFLOW__CORE__LOAD_EXAMPLES=False (tests/pipeline/conftest.py)
    return DagBag(dag_folder=str(REPO / "dags"))


def test_every_dag_imports(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "healthner_nightly" in dagbag.dag_ids


def test_nightly_structure(dagbag) -> None:
    dag = dagbag.dags["healthner_nightly"]  # get_dag() would consult the metadata DB
    assert dag.catchup is False
    assert set(dag.task_ids) == {"discover", "stage", "tag", "check", "publish"}
    chain = [("discover", "stage"), ("stage", "tag"), ("tag", "check"), ("check", "publish")]  # checked, then published
    for upstream, downstream in chain:
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.get_task("tag").is_mapped  # one task instance per shard
    assert dag.get_task("tag").pool == "healthner_tag"  # bounded: nightly.tag_slots per machine
    assert dag_constant("TAG_POOL") == "healthner_tag"  # what make run, make e2e, the bench and the tests create
    assert all(dag.get_task(t).retries >= 1 for t in dag.task_ids)
    outlets = {asset.uri for asset in dag.get_task("publish").outlets}
    assert outlets == {f"healthner://warehouse/{table}" for table in ("entities", "articles", "rejects")}
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"  # a run tags the day that has ended
    assert "dt" in dag.params


PARSE_PROBE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed_ms = (time.perf_counter() - start) * 1000
print(json.dumps({"ms": elapsed_ms, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "new": sorted(set(sys.modules) - before)}))
"""
HEAVY = ("healthner", "pyarrow", "pandas", "numpy", "torch", "yaml", "duckdb", "great_expectations", "fsspec")


def test_parsing_the_dag_file_imports_only_airflow_and_the_standard_library() -> None:
    """A DAG processor parses the file every few seconds: no params file read, no package import."""
    done = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(REPO / "dags")], capture_output=True, text=True,
                          check=True, env={**os.environ, "HEALTHNER_PARAMS": "/nonexistent/params.yaml"})
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["errors"] == {}
    heavy = [name for name in probe["new"] if name.split(".")[0] in HEAVY]
    assert not heavy, f"parsing the DAG imported {heavy[:10]}"
    print(f"\nDAG parse: {probe['ms']:.0f} ms")
