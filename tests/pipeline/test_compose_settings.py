"""The compose file (the production recipe) against `make e2e`'s native run of the same topology:
the same shared settings file, executor, broker, result backend, metadata DB, login, and the same
model and warehouse paths below the Airflow root. Reads files only; runs nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from scripts.e2e import settings as e2e

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "docker-compose.yaml"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")
URL_SETTINGS = ("AIRFLOW__CELERY__BROKER_URL", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_env(service: dict) -> dict[str, str]:
    """What a container sees: its env_file(s), then `environment` on top (compose's order)."""
    env: dict[str, str] = {}
    for name in service.get("env_file", []):
        env.update(e2e.read_env_file(COMPOSE.parent / name))
    env.update({k: str(v) for k, v in service["environment"].items()})
    return env


def native_env() -> dict[str, str]:
    return e2e.native_env(Path("/tmp/e2e"), e2e.Ports(postgres=5432, redis=6379, api=8080, moto=5000))


def same_except_host(a: str, b: str) -> None:
    """Scheme (driver included), user, password, database / broker db equal; host and port may differ."""
    ua, ub = urlsplit(a), urlsplit(b)
    assert (ua.scheme, ua.username, ua.password, ua.path) == (ub.scheme, ub.username, ub.password, ub.path), (a, b)


def test_every_airflow_service_reads_the_shared_settings_file() -> None:
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name].get("env_file") == ["airflow.env"], name


def test_compose_and_native_run_have_the_same_settings() -> None:
    native = native_env()
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = compose_env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == native["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for key in ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY"):
            assert env[key] == native[key], key
        for key in URL_SETTINGS:
            same_except_host(env[key], native[key])
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"]).hostname == "postgres"
        # SQLAlchemy 2.1's default driver is psycopg 3
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
        assert urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == "/execution/"
        assert urlsplit(native["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == "/execution/"
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                    "HEALTHNER_PARAMS"):
            assert env[key] and native[key], key


def test_database_credentials_match_the_postgres_service() -> None:
    services = compose()["services"]
    pg = services["postgres"]["environment"]
    url = urlsplit(compose_env(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (url.username, url.password, url.path.lstrip("/")) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    )


def test_model_and_warehouse_paths_are_the_same_below_the_airflow_root() -> None:
    """Compose: params.yaml's relative nightly paths, taken from /opt/airflow where ../models and
    ../data are mounted. Native: the same relative paths below the run's opt-airflow folder."""
    nightly = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["nightly"]
    mounts = {}
    for volume in compose()["services"]["airflow-worker"]["volumes"]:
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode)
    for key, relative in e2e.LAYOUT.items():
        assert nightly[key] == relative, key
        top = relative.split("/")[0]
        source, mode = mounts[f"/opt/airflow/{top}"]
        assert (COMPOSE.parent / source).resolve() == REPO / top
        if top == "models":
            assert mode == ["ro"]


def test_login_is_documented_and_the_uid_trap_is_closed() -> None:
    services = compose()["services"]
    init = services["airflow-init"]
    assert not any(key.startswith("_AIRFLOW_WWW_USER") for key in init["environment"])  # no effect under SimpleAuthManager
    assert "simple_auth_manager_passwords.json" in init["command"][1]
    assert "${AIRFLOW_UID:?" in services["airflow-worker"]["user"]  # no silent chown to 50000
    example = (REPO / "docker" / ".env.example").read_text(encoding="utf-8")
    assert "AIRFLOW_UID=" in example and "AIRFLOW_ADMIN_PASSWORD=" in example
    assert compose_env(services["airflow-apiserver"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"


def test_every_param_the_deployment_files_name_exists() -> None:
    """A comment that tells an operator to set `section.key` names a key the config accepts."""
    import re

    from healthner.config import Params

    texts = [path.read_text(encoding="utf-8") for path in
             [*(REPO / "docker").glob("docker-compose*.yaml"), REPO / "docker" / "Dockerfile", REPO / "README.md",
              REPO / "docs" / "airflow.md"]]
    named = {m for text in texts for m in re.findall(r"(?<![\w./])(nightly|tag)\.([a-z_]+)\b", text)}
    assert ("nightly", "tag_slots") in named
    assert [f"{s}.{k}" for s, k in sorted(named) if k not in Params.model_fields[s].annotation.model_fields] == []


def test_the_pool_is_sized_by_one_setting_the_env_example_documents() -> None:
    init = " ".join(compose()["services"]["airflow-init"]["command"])
    assert "airflow pools set healthner_tag \"${HEALTHNER_TAG_POOL_SLOTS:-2}\"" in init
    assert "HEALTHNER_TAG_POOL_SLOTS=" in (REPO / "docker" / ".env.example").read_text(encoding="utf-8")
