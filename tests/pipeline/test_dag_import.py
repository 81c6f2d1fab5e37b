"""Every DAG file imports cleanly, and the nightly DAG has the shape the warehouse relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert set(dag.task_ids) == {"discover", "stage", "tag", "publish", "check"}
    chain = [("discover", "stage"), ("stage", "tag"), ("tag", "publish"), ("publish", "check")]
    for upstream, downstream in chain:
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.get_task("tag").is_mapped  # one task instance per shard
    assert all(dag.get_task(t).retries >= 1 for t in dag.task_ids)
    outlets = {asset.uri for asset in dag.get_task("check").outlets}
    assert "healthner://warehouse/entities" in outlets
