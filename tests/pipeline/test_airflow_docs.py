"""docs/airflow.md: every command on the page is run, here or by `make e2e`. The pip commands run
as written, dry (`--dry-run --no-index`: resolved against this venv, nothing downloaded or
installed); the airflow commands run on the test metadata DB (the backfill as `--dry-run`), and
`make e2e` runs them for real, read from the page (scripts/e2e/settings.py: page_command)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.e2e import settings as e2e
from tests.pipeline.dag_runs import REPO, TAG_POOL, airflow

PAGE = REPO / "docs" / "airflow.md"


def page_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
    return [line.split(" #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_on_the_page_is_one_this_file_or_make_e2e_runs() -> None:
    commands = page_commands()
    assert {c.split()[0] for c in commands} == {"pip", "airflow"}
    run_by_e2e = [c for c in commands if c.startswith(e2e.PAGE_COMMANDS)]
    assert len(run_by_e2e) == len(e2e.PAGE_COMMANDS) == len([c for c in commands if c.startswith("airflow")])
    for prefix in e2e.PAGE_COMMANDS:
        assert e2e.page_command(prefix)[1:] == shlex.split(next(c for c in commands if c.startswith(prefix)))[1:]


@pytest.mark.parametrize("command", [c for c in page_commands() if c.startswith("pip ")])
def test_the_install_commands_resolve_against_the_pins(command: str, tmp_path: Path) -> None:
    """In a copy of what a checkout has (the page's commands run from the repo root)."""
    for name in ("pyproject.toml", "README.md", "healthner", "requirements"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    args = [sys.executable, "-m", *shlex.split(command), "--dry-run", "--no-index", "--no-build-isolation"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERROR" not in done.stderr


def test_the_pool_and_backfill_commands_run_on_a_metadata_db(airflow_db: Path) -> None:
    pool = airflow(*e2e.page_command("airflow pools set")[1:])
    assert pool.returncode == 0, pool.stderr[-2000:]
    got = airflow("pools", "get", TAG_POOL, "-o", "json")
    assert got.returncode == 0 and '"slots": "2"' in got.stdout, got.stdout + got.stderr
    assert airflow("dags", "reserialize").returncode == 0  # the backfill reads the DAG from the metadata DB
    backfill = airflow(*e2e.page_command("airflow backfill create")[1:], "--dry-run")
    assert backfill.returncode == 0, backfill.stderr[-2000:]
    days = re.findall(r"^\| (2026-11-\d\d) 00:00:00\+00:00 ", backfill.stdout, re.MULTILINE)  # its table of runs
    assert days == ["2026-11-21", "2026-11-22", "2026-11-23"], backfill.stdout[-2000:]
