"""The DAG in a deployment, with `dag.test()` on the real DAG file and a random-weight ensemble:
what it needs and lacks fails the run at its first task with one line (the pool, the params file,
the model, the inbox folder); a relative HEALTHNER_PARAMS is taken from the folder above dags/; the
published night's asset events carry its day, version, rows per table and model_version."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from healthner.config import load_params
from healthner.nightly.warehouse import NIGHT_COLUMN, read_day, read_night
from tests.pipeline.dag_runs import DT, REPO, TAG_POOL, airflow, run_night

pytestmark = pytest.mark.slow
TABLES = ("entities", "articles", "rejects")
ARTICLES = [{"article_id": f"a{i}", "text": text} for i, text in enumerate(["頭痛發燒三天。", "咳嗽，喉嚨痛。", "血壓高"])]
FAST_S = 60  # "at once": the first task's checks, not a tag task's timeout


def write_setup(root: Path, model: Path, **nightly: str) -> Path:
    """A params file with the inbox (one day, three articles and one bad line) and warehouse under `root`."""
    day = root / "inbox" / f"dt={DT}"
    day.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(a, ensure_ascii=False) for a in ARTICLES] + ['{"article_id": "broken"']
    (day / "articles-000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = load_params(REPO / "params.yaml").with_updates(
        nightly={"inbox_dir": str(root / "inbox"), "warehouse_dir": str(root / "warehouse"), "model_dir": str(model),
                 "fallback_model_dir": str(model), "shards": 2, **nightly})
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True), encoding="utf-8")
    return path


def failed_at_once(params_file: Path | str, capfd: pytest.CaptureFixture, **env: str) -> str:
    """Run the night; it must fail within FAST_S, without retries (AirflowFailException); the one
line it failed with, from the task's log."""
    capfd.readouterr()
    started = time.monotonic()
    state = run_night(params_file, HEALTHNER_RETRIES="2", HEALTHNER_RETRY_DELAY_S="300", **env)  # a retry: too late
    elapsed = time.monotonic() - started
    out, err = capfd.readouterr()
    assert state == "failed" and elapsed < FAST_S, (state, elapsed)
    marker = "AirflowFailException: "  # how the task's log ends: the exception's class and its message
    failures = [line.split(marker, 1)[1] for line in (out + err).splitlines() if marker in line]
    assert len(set(failures)) == 1, (out + err)[-3000:]
    return failures[0]


def asset_extras(run_id_prefix: str = "") -> dict[str, dict]:
    """The newest asset event of each warehouse table, read back from Airflow's metadata DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found = {}
    with create_session() as session:
        for table in TABLES:
            event = session.scalars(
                select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == f"healthner://warehouse/{table}").order_by(AssetEvent.id.desc()).limit(1)
            ).first()
            found[table] = (
                {"extra": event.extra, "dag": event.source_dag_id, "task": event.source_task_id} if event else None
            )
    return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory, random_ensemble: Path, airflow_db: Path) -> dict:
    root = tmp_path_factory.mktemp("setup")
    return {"root": root, "params": write_setup(root, random_ensemble), "model": random_ensemble}


def test_a_relative_params_path_is_taken_from_the_folder_above_dags_and_events_carry_the_night(setup: dict) -> None:
    relative = os.path.relpath(setup["params"], REPO)  # ../../tmp/...: resolves only from the repo root
    assert not Path(relative).is_absolute()
    assert run_night(relative) == "success"
    warehouse = str(setup["root"] / "warehouse")
    night, day = read_night(warehouse, DT), read_day(warehouse, DT)
    model_version = json.loads((setup["model"] / "ensemble.json").read_text())["model_version"]
    expected = {"dt": DT, "version": night[NIGHT_COLUMN], "model_version": model_version,
                "rows": {table: day.tables[table].num_rows for table in TABLES}}
    assert expected["rows"]["articles"] == len(ARTICLES) and expected["rows"]["rejects"] == 1
    events = asset_extras()
    assert {table: event["extra"] for table, event in events.items()} == {table: expected for table in TABLES}
    assert {(event["dag"], event["task"]) for event in events.values()} == {("healthner_nightly", "publish")}


def test_without_its_pool_the_run_fails_at_once_naming_the_pool_and_the_command(setup: dict, capfd) -> None:
    assert airflow("pools", "delete", TAG_POOL).returncode == 0
    try:
        line = failed_at_once(setup["params"], capfd)
    finally:
        assert airflow("pools", "set", TAG_POOL, "2", "healthner tag tasks").returncode == 0
    assert f"pool {TAG_POOL} does not exist" in line
    assert f'`airflow pools set {TAG_POOL} N "healthner tag tasks"`' in line


def test_a_params_file_that_is_not_there_is_one_line(setup: dict, capfd) -> None:
    line = failed_at_once("no-such-params.yaml", capfd)
    assert (f"HEALTHNER_PARAMS=no-such-params.yaml: {REPO / 'no-such-params.yaml'} not found (a relative path is "
            f"taken from {REPO}, the folder above the DAG folder)") in line


def test_a_missing_model_is_one_line(setup: dict, capfd) -> None:
    root = setup["root"] / "no-model"
    line = failed_at_once(write_setup(root, root / "models" / "release"), capfd)
    assert f"no model to tag with: neither nightly.model_dir {root / 'models' / 'release'}" in line


def test_a_missing_inbox_folder_is_one_line(setup: dict, capfd) -> None:
    root = setup["root"] / "no-inbox"
    params_file = write_setup(root, setup["model"], inbox_dir=str(root / "nowhere"))
    line = failed_at_once(params_file, capfd)
    assert f"nightly.inbox_dir {root / 'nowhere'}: no such folder" in line


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A moto S3 server on 127.0.0.1, and no AWS credentials anywhere in this process's reach."""
    import socket

    import fsspec.config
    from moto.server import ThreadedMotoServer

    for name in [n for n in os.environ if n.startswith(("AWS_", "FSSPEC_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        fsspec.config.conf.pop("s3", None)  # what the DAG's tasks set in this process (dag.test runs them here)


def test_s3_credentials_come_from_the_airflow_connection_not_the_params(setup: dict, moto_s3: str, tmp_path: Path) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=moto_s3, skip_instance_cache=True)
    fs.mkdir("night")
    lines = [json.dumps(a, ensure_ascii=False) for a in ARTICLES]
    fs.pipe(f"night/inbox/dt={DT}/articles-000.jsonl", ("\n".join(lines) + "\n").encode())
    params_file = write_setup(tmp_path, setup["model"], inbox_dir="s3://night/inbox", warehouse_dir="s3://night/warehouse")
    assert "testing" not in params_file.read_text(encoding="utf-8")
    assert run_night(params_file) == "failed"  # no connection, no AWS credentials: nothing to sign with
    connection = json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                             "extra": {"endpoint_url": moto_s3, "region_name": "us-east-1"}})
    assert run_night(params_file, AIRFLOW_CONN_HEALTHNER_S3=connection) == "success"
    assert fs.glob("night/warehouse/**/*.parquet")  # published parts, on s3
    extra = asset_extras()["articles"]["extra"]
    assert (extra["dt"], extra["rows"]["articles"]) == (DT, len(ARTICLES))
