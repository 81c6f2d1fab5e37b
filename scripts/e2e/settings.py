"""What the e2e run is made of: its constants, the Airflow settings of the native run (docker/airflow.env
plus what differs on one host), the docs page's commands, the run's log and its polling loop."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.dag_constants import TAG_POOL  # noqa: F401  (the DAG file owns it; the scenarios take it from here)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
ENV_FILE = REPO / "docker" / "airflow.env"
DAG_ID = "healthner_nightly"
DT = "2026-11-24"
SHARDS = 4
ARTICLES = 32
BAD_LINES = ['{"article_id": "broken-1", "text": "寫到一', '{"article_id": "empty-1", "text": ""}']
MARKER = "HEALTHNER_E2E_ROOT"
NIGHT_TIMEOUT_S = 420
TAG_POOL_SLOTS = 2  # two workers, each of concurrency 1 (docker/airflow.env)
RETRIES = 2  # per task ($HEALTHNER_RETRIES), 5 s apart
S3_BUCKET = "healthner-e2e"
# the compose layout: the DAG's relative paths are taken from /opt/airflow, where ../models and
# ../data are mounted; the native run mirrors it under <root>/opt-airflow
LAYOUT = {"inbox_dir": "data/inbox", "warehouse_dir": "data/warehouse", "model_dir": "models/release",
          "fallback_model_dir": "models/shipped"}
T0 = time.monotonic()
DOCS_PAGE = REPO / "docs" / "airflow.md"  # its `airflow ...` commands are run here, verbatim
PAGE_COMMANDS = ("airflow pools set", "airflow backfill create")



def code_hash() -> str:
    """A digest of what a tiny model depends on (package, params, DVC stages, the tests' tiny profile):
    the cached tiny model is retrained when any of it changes."""
    digest = hashlib.sha256()
    files = sorted([*(REPO / "healthner").rglob("*.py"), REPO / "params.yaml", REPO / "dvc.yaml",
                    REPO / "tests" / "conftest.py", REPO / "scripts" / "e2e" / "model.py"])
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]



def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.0f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@dataclass
class Ports:
    postgres: int
    redis: int
    api: int
    moto: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


def native_env(root: Path, ports: Ports) -> dict[str, str]:
    """Every Airflow setting of the native run: docker/airflow.env plus what differs on one host."""
    pg = f"airflow:airflow@127.0.0.1:{ports.postgres}/airflow"
    return {
        **read_env_file(),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:@127.0.0.1:{ports.redis}/0",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports.api}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports.api}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "healthner-e2e-only",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "airflow" / "passwords.json"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_hostname.hostname",
        "AIRFLOW__CORE__FERNET_KEY": "",
        # a dead worker's task is failed and retried after 30 s without heartbeat (compose: 60)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "HEALTHNER_PARAMS": str(root / "opt-airflow" / "params.yaml"),
        "HEALTHNER_RETRIES": str(RETRIES),  # read when the DAG file is parsed
        "HEALTHNER_RETRY_DELAY_S": "5",
        "HEALTHNER_FAULTS": str(root / "faults"),  # fault points armed by the publish fault
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "scripts" / "e2e" / "hooks")]),
        "PYTHONHASHSEED": "0",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.moto}",
        "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.moto}",
        MARKER: str(root),
    }



def page_command(prefix: str) -> list[str]:
    """The one command of docs/airflow.md's shell blocks that starts with `prefix`, as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", DOCS_PAGE.read_text(encoding="utf-8"), re.DOTALL)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    (found,) = [line for line in lines if line.startswith(prefix)]
    return [AIRFLOW, *shlex.split(found)[1:]]


def wait_for(what: str, predicate, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

