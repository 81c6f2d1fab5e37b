"""Airflow for the pipeline tests: a throwaway AIRFLOW_HOME with a SQLite metadata DB, migrated
once per session. The environment is set when this conftest loads, before anything imports
Airflow (its configuration is read once, at import)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="healthner-airflow-"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
}
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` on the session's SQLite file (a few seconds, once), and the tag pool."""
    from tests.pipeline.dag_runs import TAG_POOL, airflow

    for args in (["db", "migrate"], ["pools", "set", TAG_POOL, "2", "healthner tag tasks"]):
        result = airflow(*args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return AIRFLOW_HOME
