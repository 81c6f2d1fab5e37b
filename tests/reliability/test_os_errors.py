"""Every OS error a command meets is one line naming the path, never a traceback: an output that is
a directory, a full disk, a clean-up that fails too (after the cause, not instead of it), and a
params file that is not UTF-8."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from healthner.cli import OneLineErrors, app
from tests.cli_errors import one_line_error

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
FULL_DEVICE = Path("/dev/full")  # every write to it fails with ENOSPC


def test_an_output_that_is_a_directory_is_one_line(random_ensemble: Path, tmp_path: Path) -> None:
    articles = tmp_path / "articles.jsonl"
    articles.write_text(json.dumps({"article_id": "a", "text": "頭痛"}) + "\n", encoding="utf-8")
    (tmp_path / "out.parquet").mkdir()
    result = CliRunner().invoke(app, ["tag", "--model", str(random_ensemble), "--input", str(articles),
                                      "--output", str(tmp_path / "out.parquet"), "--params", str(REPO / "params.yaml")])
    one_line_error(result, str(tmp_path / "out.parquet"), "is a folder")


def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes((REPO / "params.yaml").read_bytes().replace(b"tag:", b"tag: \xff\xfe", 1))
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--params", str(params)])
    one_line_error(result, str(params), "UTF-8")


def failing_app() -> typer.Typer:
    """A command under the CLI's one error handler that meets real OS errors."""
    errors = typer.Typer(cls=OneLineErrors)

    @errors.command()
    def write(path: Path, clean_up: Path | None = None) -> None:
        try:
            with path.open("w", encoding="utf-8") as fh:
                fh.write("x" * 65536)
        except OSError:
            if clean_up is not None:
                clean_up.unlink()  # fails as well: the cause must still be the one reported first
            raise

    @errors.command()
    def other() -> None:  # a second command, so `write` is a subcommand as in the real CLI
        pass

    return errors


@pytest.mark.skipif(not FULL_DEVICE.exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_one_line() -> None:
    one_line_error(CliRunner().invoke(failing_app(), ["write", str(FULL_DEVICE)]), os.strerror(errno.ENOSPC))


def test_a_failing_clean_up_does_not_hide_the_cause(tmp_path: Path) -> None:
    line = one_line_error(CliRunner().invoke(failing_app(), ["write", str(tmp_path / "no" / "out"),
                                                             "--clean-up", str(tmp_path / "gone")]))
    cause, clean_up = line.index(str(tmp_path / "no" / "out")), line.index(str(tmp_path / "gone"))
    assert cause < clean_up, line
