"""healthner nightly: tag the articles collected on one day into the Delta Lake warehouse.

discover -> stage (read, rejects, shards into a new staging folder) -> tag (one mapped task per
shard, in the `healthner_tag` pool) -> check (GX suite on the staged night: nothing is published
if it fails; Data Docs under the warehouse's _reports/dt=...) -> publish (the day replaced in the
three Delta tables, then the night record that makes it visible; emits the warehouse assets and
returns {dt, version, rows, lines_read, model_version, already}).

The day: a run tags the day its data interval starts. The schedule is a data-interval timetable,
so the run that starts at 00:00 UTC tags the day that has just ended. Tag another day with the
param `dt`: `airflow dags trigger healthner_nightly -c '{"dt": "2026-11-24"}'` (or
`airflow dags test healthner_nightly -c '{"dt": "2026-11-24"}'`).

Parsing this file imports only airflow.sdk and the standard library; every task imports the
package when it runs. Settings: the params file in $HEALTHNER_PARAMS (default: params.yaml at the
repo root; relative paths in it are taken from the repo root). Retries: $HEALTHNER_RETRIES
(default 2) and $HEALTHNER_RETRY_DELAY_S (default 300), read here because Airflow needs them
when it parses the file.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
PARAMS_FILE = os.environ.get("HEALTHNER_PARAMS", "params.yaml")
RETRIES = int(os.environ.get("HEALTHNER_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("HEALTHNER_RETRY_DELAY_S", "300")))
TAG_POOL = "healthner_tag"  # its size: nightly.tag_slots (scripts/run_pipeline.sh creates it)
DAY_BOUNDARY = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")  # a run per day, tagging that day
ENTITIES = Asset("healthner://warehouse/entities")
ARTICLES = Asset("healthner://warehouse/articles")
REJECTS = Asset("healthner://warehouse/rejects")


def params():
    from healthner.nightly.night import night_params

    return night_params(PARAMS_FILE, REPO_ROOT)


@dag(
    dag_id="healthner_nightly",
    schedule=DAY_BOUNDARY,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={"dt": Param(None, type=["null", "string"], description="tag this day (YYYY-MM-DD) instead of the data interval's")},
    tags=["healthner"],
    doc_md=__doc__,
)
def healthner_nightly() -> None:
    @task
    def discover() -> dict:
        from healthner.nightly import night

        context = get_current_context()
        dt = night.night_day(context["params"].get("dt"), context.get("data_interval_start"))
        files = night.discover(params(), dt)
        if not files:
            raise AirflowSkipException(f"no inbox files for dt={dt}")
        return {"dt": dt, "files": files}

    @task
    def stage(day: dict) -> list[str]:
        from healthner.nightly import night

        return night.stage(params(), day["dt"], day["files"])

    @task(pool=TAG_POOL)
    def tag(shard: str) -> dict:
        from healthner.nightly import night

        return night.tag(params(), shard)

    @task
    def check(shards: list[dict]) -> str:
        from healthner.nightly import night
        from healthner.nightly.checks import CheckFailed

        try:
            return night.check(params(), shards)
        except CheckFailed as failed:  # the same night fails the same way: no retry
            raise AirflowFailException(str(failed)) from failed

    @task(outlets=[ENTITIES, ARTICLES, REJECTS])
    def publish(version_dir: str) -> dict:
        from healthner.nightly import night
        from healthner.nightly.publish import Superseded

        try:
            return night.publish(params(), version_dir)
        except Superseded as newer:
            raise AirflowSkipException(str(newer)) from newer

    publish(check(tag.expand(shard=stage(discover()))))


healthner_nightly()
