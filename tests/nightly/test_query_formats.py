"""`healthner query --format table|csv|json|parquet --output FILE` on a published night, each read back
with its own reader (csv, json, pyarrow)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.nightly.query import QueryFailed, run_query
from tests.nightly.nights import ARTICLES, DAY, night_params, publish_day_checked, stage_and_tag, write_inbox

SQL = "SELECT article_id, type, text, start, \"end\", dt FROM entities ORDER BY article_id"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("night")
    params = night_params(root)
    write_inbox(root, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    return params.nightly.warehouse_dir, params_file


def expected() -> list[tuple[str, str]]:
    return [(a["article_id"], a["text"].lstrip()[0]) for a in ARTICLES]  # one entity per article, on its first character


def test_csv_and_json_hold_every_row(warehouse: tuple[str, Path]) -> None:
    root, _ = warehouse
    rows = list(csv.DictReader(io.StringIO(run_query(root, SQL, "csv"))))
    assert [(r["article_id"], r["text"]) for r in rows] == expected() and rows[0]["dt"] == DAY
    records = json.loads(run_query(root, SQL, "json"))
    assert [(r["article_id"], r["text"]) for r in records] == expected() and records[0]["end"] == records[0]["start"] + 1


def test_parquet_goes_to_a_file_read_back_by_pyarrow(warehouse: tuple[str, Path], tmp_path: Path) -> None:
    _, params_file = warehouse
    out = tmp_path / "result" / "entities.parquet"
    result = CliRunner().invoke(
        app, ["query", SQL, "--format", "parquet", "--output", str(out), "--params", str(params_file)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{len(ARTICLES)} row(s) -> {out}\n"
    table = pq.read_table(out)
    assert list(zip(table.column("article_id").to_pylist(), table.column("text").to_pylist(), strict=True)) == expected()
    assert [p.name for p in out.parent.iterdir()] == ["entities.parquet"]  # no temporary left


def test_table_is_duckdbs_printout_and_parquet_needs_a_file(warehouse: tuple[str, Path], tmp_path: Path) -> None:
    root, params_file = warehouse
    assert "article_id" in run_query(root, SQL) and "a1" in run_query(root, SQL, "table")
    with pytest.raises(QueryFailed, match="give --output FILE"):
        run_query(root, SQL, "parquet")
    result = CliRunner().invoke(app, ["query", SQL, "--format", "xml", "--params", str(params_file)])
    assert result.exit_code == 1 and result.stderr.startswith("error: --format xml: one of table, csv, json, parquet")
