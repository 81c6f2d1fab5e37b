"""The warehouse under tampering: a lost data file, a table altered behind the night record, a
corrupt Delta log entry. Each is named in one line; none gives fewer rows silently; none blocks
publishing the other days."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable
from typer.testing import CliRunner

from healthner.cli import app
from healthner.nightly.query import QueryFailed, run_query
from healthner.nightly.upkeep import verify
from healthner.nightly.warehouse import WarehouseCorrupt, read_day
from tests.nightly.nights import ARTICLES, DAY, OTHER_DAY, night_params, publish_day_checked, stage_and_tag, write_inbox

pytestmark = pytest.mark.reliability
THIRD_DAY = "2026-11-22"


@pytest.fixture
def published(tmp_path: Path):
    """Two published days and a params file pointing at their warehouse."""
    params = night_params(tmp_path)
    for dt, count in ((DAY, 3), (OTHER_DAY, 2)):
        write_inbox(tmp_path, dt, ARTICLES[:count])
        publish_day_checked(params, stage_and_tag(params, dt))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)), encoding="utf-8")
    return params, params_file


def cli(params_file: Path, *args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, [*args, "--params", str(params_file)])
    return done.exit_code, done.output


def test_a_lost_data_file_is_named_never_fewer_rows(published) -> None:
    params, params_file = published
    warehouse = params.nightly.warehouse_dir
    lost = next(Path(warehouse, "entities", f"dt={DAY}").glob("*.parquet"))
    lost.unlink()
    with pytest.raises(WarehouseCorrupt, match=lost.name):
        read_day(warehouse, DAY)
    with pytest.raises(QueryFailed, match=lost.name):
        run_query(warehouse, "SELECT count(*) FROM entities")
    code, output = cli(params_file, "query", "SELECT count(*) FROM entities")
    assert code == 1 and output.count("\n") == 1 and output.startswith("error: ") and lost.name in output
    assert read_day(warehouse, OTHER_DAY).tables["entities"].num_rows == 2  # the other day reads


def test_a_table_altered_behind_its_night_record_is_an_error_not_fewer_rows(published) -> None:
    """The Delta form of a pointer that lost a file: the table's current version holds fewer of the
    night's rows than its record says (here a DELETE by another engine)."""
    params, params_file = published
    warehouse = params.nightly.warehouse_dir
    DeltaTable(f"{warehouse}/articles").delete(f"dt = '{DAY}' AND article_id = 'a1'")
    with pytest.raises(WarehouseCorrupt, match=rf"articles dt={DAY}: 2 rows at version \d+, 3 in its night record"):
        run_query(warehouse, "SELECT count(*) FROM articles")
    code, output = cli(params_file, "warehouse", "verify")
    assert code == 1 and output.count("\n") == 1 and f"articles dt={DAY}" in output
    write_inbox(Path(warehouse).parent, DAY, ARTICLES)  # republishing the day repairs it
    publish_day_checked(params, stage_and_tag(params, DAY))
    assert "2 published day(s)" in verify(warehouse)


def test_a_corrupt_log_entry_is_named_and_other_days_still_publish(published) -> None:
    params, params_file = published
    warehouse = params.nightly.warehouse_dir
    entry = Path(warehouse, "entities", "_delta_log", "00000000000000000001.json")  # DAY's commit
    entry.write_text("{not json", encoding="utf-8")
    write_inbox(Path(warehouse).parent, THIRD_DAY, ARTICLES[:1])
    publish_day_checked(params, stage_and_tag(params, THIRD_DAY))  # the state comes from the checkpoints
    out = run_query(warehouse, "SELECT dt, count(*) AS n FROM entities GROUP BY dt ORDER BY dt")
    assert [line.split("│")[2].strip() for line in out.splitlines() if "2026-" in line] == ["1", "2", "3"]
    code, output = cli(params_file, "warehouse", "verify")
    assert code == 1 and output.count("\n") == 1 and str(entry) in output and "corrupt Delta log entry" in output


def test_a_corrupt_log_entry_that_must_be_read_is_named_in_one_line(published) -> None:
    """Without the checkpoint that covers it, the table's state needs the entry: every reader and
    writer of that table stops with one line naming it; the other tables are untouched."""
    params, params_file = published
    warehouse = params.nightly.warehouse_dir
    log = Path(warehouse, "rejects", "_delta_log")
    entry = max(log.glob("*.json"))
    for checkpoint in log.glob("*.checkpoint.parquet"):
        checkpoint.unlink()
    (log / "_last_checkpoint").unlink()
    entry.write_bytes(b"\x00garbage")
    code, output = cli(params_file, "query", "SELECT count(*) FROM articles")
    assert code == 1 and output.count("\n") == 1 and str(entry) in output
    assert DeltaTable(f"{warehouse}/articles").to_pyarrow_table().num_rows == 5  # other tables read
