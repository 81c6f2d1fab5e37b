"""Airflow for the pipeline tests: a throwaway AIRFLOW_HOME with a SQLite metadata DB, migrated
once per session. The environment is set when this conftest loads, before anything imports
Airflow (its configuration is read once, at import)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
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
    """`airflow db migrate` on the session's SQLite file (a few seconds, once)."""
    result = subprocess.run(
        [str(AIRFLOW_BIN), "db", "migrate"], env={**os.environ, **AIRFLOW_ENV}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return AIRFLOW_HOME
