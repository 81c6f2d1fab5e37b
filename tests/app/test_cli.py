"""One-line errors: every anticipated CLI error is one line on stderr and exit 1, from one handler;
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
from tests.cli_errors import one_line_error

REPO = Path(__file__).resolve().parents[2]


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


# --- one error path, one --params, three help panels ------------------------------------------------------------------

CLI_PACKAGE = REPO / "healthner" / "cli"


def cli_source() -> str:
    """The CLI package's source, every module of it."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(CLI_PACKAGE.glob("*.py")))


def command_functions() -> list:
    """Every function in the CLI package registered as a command (`@app.command`, `@corpus_app.command`, ...)."""
    import ast

    tree = ast.parse(cli_source())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
        for d in node.decorator_list)]


def test_no_command_catches_its_own_errors() -> None:
    import ast

    commands = command_functions()
    assert len(commands) >= 20
    for command in commands:
        catching = [n for n in ast.walk(command) if isinstance(n, ast.Try)]
        exiting = [n for n in ast.walk(command) if isinstance(n, ast.Attribute) and n.attr == "Exit"]
        assert not catching and not exiting, f"{command.name} handles its own errors; raise a HealthnerError instead"


def test_the_errors_commands_used_to_catch_are_healthner_errors() -> None:
    from healthner.corpus.fetch import FetchError
    from healthner.corpus.validate import ValidationFailed
    from healthner.corpus.vocab import PreparedVocabMismatch
    from healthner.errors import HealthnerError

    assert all(issubclass(error, HealthnerError) for error in (FetchError, ValidationFailed, PreparedVocabMismatch))


def test_an_errors_details_come_above_its_one_line(monkeypatch: pytest.MonkeyPatch, params_file: Path) -> None:
    from healthner.errors import HealthnerError
    from healthner.nightly import query

    class Findings(HealthnerError):
        details = ("a.txt:3: first", "b.txt:9: second")

    def fail(*args: object) -> None:
        raise Findings("2 findings")

    monkeypatch.setattr(query, "run_query", fail)
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--params", str(params_file)])
    assert result.exit_code == 1 and result.stderr.splitlines() == ["a.txt:3: first", "b.txt:9: second", "error: 2 findings"]


def test_params_is_declared_once_on_the_callback() -> None:
    source = cli_source()
    assert source.count('"--params"') == 1 and source.count("load_params(") == 1
    assert all("params" not in [a.arg for a in command.args.args] for command in command_functions())


@pytest.mark.parametrize("where", ["before", "after", "after="])
def test_params_may_come_before_or_after_the_command(where: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    args = {"before": ["--params", missing, "query", "SELECT 1"], "after": ["query", "SELECT 1", "--params", missing],
            "after=": ["query", "SELECT 1", f"--params={missing}"]}[where]
    one_line_error(CliRunner().invoke(app, args), f"{missing}: params file not found")
    one_line_error(CliRunner().invoke(app, ["warehouse", "verify", "--params", missing]), missing)


def test_hoisting_params_stops_at_a_bare_double_dash() -> None:
    from healthner.cli import hoist_params

    assert hoist_params(["tag", "--input", "x", "--params", "p.yaml", "--", "--params"]) == [
        "--params", "p.yaml", "tag", "--input", "x", "--", "--params"]
    assert hoist_params(["query", "--params"]) == ["query", "--params"]


def test_params_are_loaded_once_per_invocation(params_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    import typer.main

    from healthner.cli import group as cli

    loads: list[Path] = []
    monkeypatch.setattr(cli, "load_params", lambda path: loads.append(path) or object())
    group = typer.main.get_command(app)
    root = typer.Context(group)
    root.meta[cli.PARAMS_KEY] = params_file
    child = typer.Context(group.commands["query"], parent=root)
    assert cli.params_of(child) is cli.params_of(root) and loads == [params_file]


def test_help_groups_the_commands_in_three_panels() -> None:
    import typer.main

    from healthner.cli import PIPELINE, TOOLS, WAREHOUSE

    panels = {name: command.rich_help_panel for name, command in typer.main.get_command(app).commands.items()}
    def in_panel(panel: str) -> set[str]:
        return {name for name, shown_in in panels.items() if shown_in == panel}

    assert in_panel(PIPELINE) >= {"validate", "prepare", "lexicon", "unlabeled", "train", "crossfit", "stack", "evaluate",
                                  "release", "teach", "student"}
    assert in_panel(WAREHOUSE) == {"tag", "query", "sample-night", "warehouse"}
    assert in_panel(TOOLS) == {"corpus", "checkpoint", "export-onnx", "score", "ablate"}
    assert set(panels.values()) == {PIPELINE, WAREHOUSE, TOOLS}
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"}).output
    assert shown.index(PIPELINE) < shown.index(WAREHOUSE) < shown.index(TOOLS)
