"""The deployment files: compose services on the official Airflow 3 CeleryExecutor pattern, and a
Dockerfile that hadolint passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "docker-compose.yaml"
GPU_OVERRIDE = REPO / "docker" / "docker-compose.gpu.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init"
}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def service_env(service: dict) -> dict[str, str]:
    """The service's env_file(s) (KEY=VALUE lines) with its `environment` on top, as compose merges them."""
    env = {}
    for name in service.get("env_file", []):
        for line in (COMPOSE.parent / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip()
    return {**env, **service["environment"]}


def test_compose_has_the_celery_stack() -> None:
    services = compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = service_env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert "container_name" not in services["airflow-worker"]  # `--scale airflow-worker=N` needs no fixed name
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_compose_mounts_dags_models_and_data() -> None:
    volumes = compose()["services"]["airflow-worker"]["volumes"]
    targets = {v.split(":")[1] for v in volumes}
    assert {"/opt/airflow/dags", "/opt/airflow/models", "/opt/airflow/data"} <= targets
    for volume in volumes:
        source = volume.split(":")[0]
        if source.startswith(".."):
            assert (COMPOSE.parent / source).resolve().parent == REPO


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(REPO / "docker" / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_on_the_pinned_airflow_image() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    lock = (REPO / "requirements" / "worker.lock").read_text(encoding="utf-8")
    pinned = next(line.split("==")[1] for line in lock.splitlines() if line.startswith("apache-airflow=="))
    assert f"ARG AIRFLOW_VERSION={pinned}" in text
    assert "FROM apache/airflow:${AIRFLOW_VERSION}" in text
    assert "COPY --chown=airflow:root requirements/worker.lock ./" in text and "-r worker.lock" in text


def test_gpu_override_builds_on_cuda_torch_and_reserves_a_gpu_per_worker() -> None:
    override = yaml.safe_load(GPU_OVERRIDE.read_text(encoding="utf-8"))["services"]
    assert set(override) == {"airflow-worker"} and set(override) <= set(compose()["services"])
    worker = override["airflow-worker"]
    index = worker["build"]["args"]["TORCH_INDEX"]
    assert "/whl/cu" in index and index in (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert "ARG TORCH_INDEX" in (REPO / "docker" / "Dockerfile").read_text()
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert worker["image"] != compose()["services"]["airflow-worker"]["image"]  # never overwrites the CPU image tag
