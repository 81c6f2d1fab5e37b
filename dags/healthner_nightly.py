"""healthner nightly: tag the day's inbox articles into the Parquet warehouse.

discover -> stage (read, rejects, shards) -> tag (one mapped task per shard) -> publish (atomic
partition swap) -> check (GX suite; emits the warehouse assets for downstream DAGs).
Only orchestration here: every step is one function of the `healthner` package.
Settings: the params file in $HEALTHNER_PARAMS (default: params.yaml at the repo root); relative
paths in it are taken from the repo root (the folder above dags/).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from healthner.config import Params, load_params

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_ENV = "HEALTHNER_PARAMS"
ENTITIES = Asset("healthner://warehouse/entities")
ARTICLES = Asset("healthner://warehouse/articles")
REJECTS = Asset("healthner://warehouse/rejects")
DT = "{{ ds }}"


def nightly_params() -> Params:
    from healthner.nightly.batch import resolve_paths

    path = Path(os.environ.get(PARAMS_ENV, REPO_ROOT / "params.yaml"))
    return resolve_paths(load_params(path if path.is_absolute() else REPO_ROOT / path), REPO_ROOT)


SETTINGS = nightly_params().nightly


@dag(
    dag_id="healthner_nightly",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": SETTINGS.retries, "retry_delay": timedelta(seconds=SETTINGS.retry_delay_s)},
    tags=["healthner"],
    doc_md=__doc__,
)
def healthner_nightly() -> None:
    @task
    def discover(dt: str) -> list[str]:
        from healthner.nightly.batch import day_files

        files = day_files(nightly_params().nightly.inbox_dir, dt)
        if not files:
            raise AirflowSkipException(f"no inbox files for dt={dt}")
        return files

    @task
    def stage(files: list[str], dt: str) -> list[str]:
        from healthner.nightly.batch import stage_day

        return stage_day(nightly_params(), dt, files)

    # shards tagged at once on one worker: batch.shard_tag_params gives each its share of the cores
    @task(max_active_tis_per_dagrun=SETTINGS.parallel_shards)
    def tag(shard: str) -> dict:
        from dataclasses import asdict

        from healthner.nightly.batch import tag_shard

        return asdict(tag_shard(nightly_params(), shard))

    @task
    def publish(shards: list[dict], dt: str) -> dict:
        from dataclasses import asdict

        from healthner.nightly.warehouse import publish_day, staging_of

        staging = {staging_of(shard["shard"]) for shard in shards}
        if len(staging) != 1:
            raise ValueError(f"shards of one run must share one staging folder, got {sorted(staging)}")
        return asdict(publish_day(nightly_params().nightly.warehouse_dir, dt, staging.pop()))

    @task(outlets=[ENTITIES, ARTICLES, REJECTS])
    def check(published: dict) -> str:
        from healthner.nightly.checks import assert_published

        return str(assert_published(nightly_params().nightly.warehouse_dir, published["dt"]))

    shards = stage(discover(DT), DT)
    check(publish(tag.expand(shard=shards), DT))


healthner_nightly()
