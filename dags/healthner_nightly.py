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
package when it runs. Settings: the params file in $HEALTHNER_PARAMS (default: params.yaml in the
folder above this file's folder, the base: a relative $HEALTHNER_PARAMS and the relative paths in
the file are taken from there). Retries: $HEALTHNER_RETRIES (default 2) and
$HEALTHNER_RETRY_DELAY_S (default 300), read here because Airflow needs them when it parses the file.

Fails loudly: `discover` first checks what every night needs (the params file, the model, the
inbox folder, the `healthner_tag` pool) and fails the run at once, without retries, with one line
naming what is missing. Without the pool the tag tasks would otherwise wait, scheduled, forever.
The published night's asset events carry its day, version, rows per table and model_version
(docs/airflow.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

REPO_ROOT = str(Path(__file__).resolve().parent.parent)  # the base of relative paths (compose: /opt/airflow)
PARAMS_FILE = os.environ.get("HEALTHNER_PARAMS", "params.yaml")
RETRIES = int(os.environ.get("HEALTHNER_RETRIES", "2"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("HEALTHNER_RETRY_DELAY_S", "300")))
TAG_POOL = "healthner_tag"  # its size: tag tasks at once, at most the worker slots (docs/airflow.md); the one owner
# of the name: make run, make e2e, the bench and the tests read it from here (scripts/dag_constants.py)
CREATE_POOL = f'airflow pools set {TAG_POOL} N "healthner tag tasks"'  # N: see docs/airflow.md
S3_CONNECTION = "healthner_s3"  # optional: the credentials of s3:// inbox and warehouse
API_CONNECTION = "healthner_api"  # optional: the REST API that deployed tasks ask whether the pool exists
DB_BLOCKED = "airflow-db-not-allowed"  # the metadata DB URL Airflow gives a deployed task
DAY_BOUNDARY = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")  # a run per day, tagging that day
ENTITIES = Asset("healthner://warehouse/entities")
ARTICLES = Asset("healthner://warehouse/articles")
REJECTS = Asset("healthner://warehouse/rejects")


def params():
    from healthner.nightly.night import night_params

    use_s3_connection()
    return night_params(PARAMS_FILE, REPO_ROOT)


def use_s3_connection() -> None:
    """When the Airflow connection `healthner_s3` exists, s3:// paths use it (login: the key, password:
    the secret, extra: endpoint_url and region_name), so no key lives in the params file; without it
    s3fs takes the standard AWS chain (environment, profile, instance role)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = Connection.get(S3_CONNECTION)
    except AirflowNotFoundException:
        return
    import fsspec.config

    extra = connection.extra_dejson
    options = {"key": connection.login, "secret": connection.password, "endpoint_url": extra.get("endpoint_url"),
               "client_kwargs": {"region_name": extra["region_name"]} if extra.get("region_name") else None}
    fsspec.config.conf["s3"] = {name: value for name, value in options.items() if value}


def pool_exists(name: str) -> bool | None:
    """Whether the pool exists: asked of the metadata DB (`airflow pools get`) where this process may
    reach it (`airflow dags test`, dag.test()), else of the REST API through the optional connection
    `healthner_api` (Airflow 3 keeps deployed tasks off the metadata DB); None, with a warning, where
    neither can answer."""
    import logging

    if not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").startswith(DB_BLOCKED):
        done = subprocess.run([sys.executable, "-m", "airflow", "pools", "get", name, "-o", "json"],
                              capture_output=True, text=True, timeout=120, check=False)
        said = (done.stdout + done.stderr).strip()
        if done.returncode == 0 or f"Pool {name} does not exist" in said:
            return done.returncode == 0
    found = pool_via_api(name)
    if found is None:
        logging.getLogger(__name__).warning(
            "could not check that the pool %s exists: this task may not read the metadata DB, and there is no "
            "connection %s for the REST API (docs/airflow.md)", name, API_CONNECTION)
    return found


def pool_via_api(name: str) -> bool | None:
    """GET /api/v2/pools/NAME on the API server of the connection `healthner_api` (host: its base
    URL; login and password: a user that may read pools); None without that connection."""
    import json
    import urllib.error
    import urllib.request

    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        api = Connection.get(API_CONNECTION)
    except AirflowNotFoundException:
        return None
    base = api.host.rstrip("/") if "://" in api.host else f"{api.schema or 'http'}://{api.host}:{api.port or 8080}"
    login = urllib.request.Request(f"{base}/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                   data=json.dumps({"username": api.login, "password": api.password}).encode())
    with urllib.request.urlopen(login, timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/v2/pools/{name}",
                                                      headers={"Authorization": f"Bearer {token}"}), timeout=30).close()
    except urllib.error.HTTPError as missing:
        if missing.code == 404:
            return False
        raise
    return True


def require_setup() -> None:
    """Fail the run now, without retries, with one line, when a night cannot succeed."""
    from healthner.errors import HealthnerError
    from healthner.nightly import night

    try:
        night.require_inputs(params())
    except HealthnerError as missing:
        raise AirflowFailException(str(missing)) from None
    if pool_exists(TAG_POOL) is False:
        raise AirflowFailException(f"pool {TAG_POOL} does not exist, so the tag tasks would never run: "
                                   f"create it with `{CREATE_POOL}`")


@dag(
    dag_id="healthner_nightly",
    schedule=DAY_BOUNDARY,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={"dt": Param(None, type=["null", "string"], format="date",
                        description="tag this day (YYYY-MM-DD) instead of the data interval's")},
    tags=["healthner"],
    doc_md=__doc__,
)
def healthner_nightly() -> None:
    @task
    def discover() -> dict:
        from healthner.nightly import night

        require_setup()
        context = get_current_context()
        try:
            dt = night.night_day(context["params"].get("dt"), context.get("data_interval_start"))
        except night.NoDay as no_day:
            raise AirflowFailException(str(no_day)) from None
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
    def publish(version_dir: str, shards: list[dict]) -> dict:
        """Publish the checked night; each table's asset event carries night.asset_extra."""
        from healthner.nightly import night
        from healthner.nightly.publish import Superseded

        try:
            published = night.publish(params(), version_dir)
        except Superseded as newer:
            raise AirflowSkipException(str(newer)) from newer
        extra = night.asset_extra(published)
        events = get_current_context()["outlet_events"]
        for asset in (ENTITIES, ARTICLES, REJECTS):
            events[asset].extra = extra
        return published

    tagged = tag.expand(shard=stage(discover()))
    publish(check(tagged), tagged)


healthner_nightly()
