"""Running the real nightly DAG file with `dag.test()`: as its timetable schedules a day, or as a
manual trigger with `conf`, under given environment settings (read by the DAG file and every task)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.dag_constants import TAG_POOL  # noqa: F401  (the DAG file owns it; the tests take it from here)

REPO = Path(__file__).resolve().parents[2]
DT = "2026-11-24"


def airflow(*args: str) -> subprocess.CompletedProcess:
    """The `airflow` command on this session's metadata DB (the environment tests/pipeline/conftest.py set)."""
    return subprocess.run([str(Path(sys.executable).parent / "airflow"), *args], env=dict(os.environ),
                          capture_output=True, text=True, check=False)


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags["healthner_nightly"]


def scheduled_run(dag, day: str):
    """The run the DAG's timetable schedules after the interval before `day`: (run_after, interval)."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    info = coerce_to_core_timetable(dag.timetable).next_dagrun_info(
        last_automated_data_interval=DataInterval(start - timedelta(days=1), start),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    return info.run_after, info.data_interval


def run_night(params_file: Path | str, conf: dict | None = None, day: str = DT, **env: str) -> str:
    """One `dag.test()` run of the real DAG file with these params, as its timetable schedules the
    night of `day` (or with `conf`, as a manual trigger); returns the run's state."""
    settings = {"HEALTHNER_PARAMS": str(params_file), "HEALTHNER_RETRIES": "0", **env}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # read by the DAG file and by every task
    try:
        dag = load_dag()
        run_after, _ = scheduled_run(dag, day)
        state = dag.test(logical_date=run_after, run_conf=conf).state
    finally:
        for name, value in previous.items():
            os.environ.pop(name) if value is None else os.environ.update({name: value})
    return getattr(state, "value", state)
