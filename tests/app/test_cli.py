"""One-line errors (issue 17.6): every anticipated CLI error is one line on stderr and exit 1;
tracebacks only with --debug or HEALTHNER_DEBUG=1; a bug keeps its traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app

REPO = Path(__file__).resolve().parents[2]


def one_line_error(result, *says: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(text in lines[0] for text in says), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["nightly"]["warehouse_dir"] = str(tmp_path / "warehouse")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps({"article_id": "a", "text": "頭痛"}) + "\n", encoding="utf-8")
    return path


def test_a_missing_model_is_one_line(params_file: Path, articles: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tag", "--model", "/nonexistent", "--input", str(articles),
                                      "--output", str(tmp_path / "e.parquet"), "--params", str(params_file)])
    one_line_error(result, "/nonexistent", "model folder not found")


def test_a_missing_input_is_one_line(params_file: Path, random_ensemble: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tag", "--model", str(random_ensemble), "--input", str(tmp_path / "none.jsonl"),
                                      "--output", str(tmp_path / "e.parquet"), "--params", str(params_file)])
    one_line_error(result, "none.jsonl: input file not found")


def test_a_tampered_model_is_one_line(params_file: Path, random_ensemble: Path, articles: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(random_ensemble, model)
    manifest = json.loads((model / "ensemble.json").read_text())
    (model / "ensemble.json").write_text(json.dumps({**manifest, "context": 1}), encoding="utf-8")
    result = CliRunner().invoke(app, ["tag", "--model", str(model), "--input", str(articles),
                                      "--output", str(tmp_path / "e.parquet"), "--params", str(params_file)])
    one_line_error(result, "changed since saving")


def test_missing_and_bad_params_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside the repo: no params.yaml here
    one_line_error(CliRunner().invoke(app, ["query", "SELECT 1"]), "params.yaml: params file not found")
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["nightly"]["shards"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    one_line_error(CliRunner().invoke(app, ["query", "SELECT 1"]), "nightly.shards", "greater than 0")


def test_bad_sql_and_an_empty_warehouse_are_one_line(params_file: Path) -> None:
    one_line_error(CliRunner().invoke(app, ["query", "SELEC oops", "--params", str(params_file)]))
    one_line_error(CliRunner().invoke(app, ["query", "SELECT count(*) FROM entities", "--params", str(params_file)]))


def test_debug_shows_the_traceback(
    params_file: Path, articles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["tag", "--model", "/nonexistent", "--input", str(articles), "--output", str(tmp_path / "e.parquet"),
            "--params", str(params_file)]
    result = CliRunner().invoke(app, ["--debug", *args])
    assert result.exit_code == 1 and isinstance(result.exception, FileNotFoundError)
    monkeypatch.setenv("HEALTHNER_DEBUG", "1")
    assert isinstance(CliRunner().invoke(app, args).exception, FileNotFoundError)


def test_a_bug_keeps_its_traceback(params_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from healthner.nightly import query

    monkeypatch.setattr(query, "run_query", lambda *a: 1 / 0)
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--params", str(params_file)])
    assert isinstance(result.exception, ZeroDivisionError)


def test_the_installed_command_prints_one_line_and_no_rich_traceback(tmp_path: Path, articles: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "healthner.cli", "tag", "--model", "/nonexistent", "--input", str(articles),
         "--output", str(tmp_path / "e.parquet"), "--params", str(REPO / "params.yaml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: /nonexistent: model folder not found; run `healthner stack` (dvc repro stack) first"
    ]
