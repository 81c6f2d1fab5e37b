"""Publishing a day without a model: real inbox files staged, parts written with hand-placed
entities (the writer the tagging task uses), real Delta tables read back with deltalake and DuckDB, GX;
vacuum, compaction and the migration from the earlier layout."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from healthner.nightly.batch import write_tagged
from healthner.nightly.checks import CheckFailed, check_version
from healthner.nightly.day import read_shard, stage_day
from healthner.nightly.inbox import day_files
from healthner.nightly.publish import publish_day
from healthner.nightly.staging import version_dir_of
from healthner.nightly.tagger import Entity
from healthner.nightly.upkeep import compact, migrate, vacuum
from healthner.nightly.warehouse import (
    ARTICLES_SCHEMA,
    DATASETS,
    ENTITIES_SCHEMA,
    REJECTS_SCHEMA,
    SCHEMAS,
    PublishError,
    read_day,
    read_night,
    read_partition,
)
from tests.nightly.nights import (
    ARTICLES,
    DAY,
    OTHER_DAY,
    check_published,
    night_params,
    publish_day_checked,
    stage_and_tag,
    write_inbox,
)


@pytest.fixture
def params(tmp_path: Path):
    return night_params(tmp_path)


def count(warehouse: str, dataset: str, dt: str) -> int:
    """Rows of one day, read by DuckDB over the table's Delta dataset (no healthner code)."""
    dataset = DeltaTable(f"{warehouse}/{dataset}").to_pyarrow_dataset()
    return duckdb.sql(f"SELECT count(*) FROM dataset WHERE dt = '{dt}'").fetchall()[0][0]


def rows_by(reader: str, warehouse: str, name: str) -> list[tuple]:
    """Every row of a table, sorted, as deltalake or DuckDB reads the Delta table, without the `night` column."""
    columns = [*SCHEMAS[name].names, "dt"]
    dataset = DeltaTable(f"{warehouse}/{name}").to_pyarrow_dataset()
    if reader == "duckdb":
        found = duckdb.sql(f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM dataset").fetchall()
    else:
        found = [tuple(row.values()) for row in dataset.to_table(columns=columns).to_pylist()]
    return sorted(tuple(str(v) for v in row) for row in found)


def test_publish_writes_three_datasets_with_their_schemas(params, tmp_path: Path) -> None:
    write_inbox(tmp_path, DAY, ARTICLES, extra=["not json", json.dumps({"text": "無編號"}, ensure_ascii=False)])
    warehouse = params.nightly.warehouse_dir
    published = publish_day_checked(params, stage_and_tag(params, DAY))
    assert published.rows == {"entities": 3, "articles": 3, "rejects": 2} and published.lines_read == 5
    for dataset, schema in (("entities", ENTITIES_SCHEMA), ("articles", ARTICLES_SCHEMA), ("rejects", REJECTS_SCHEMA)):
        assert read_partition(warehouse, dataset, DAY).schema.equals(schema)
    articles = {r["article_id"]: r for r in read_partition(warehouse, "articles", DAY).to_pylist()}
    assert articles["a1"]["title"] == "頭痛" and articles["a2"]["url"] == "https://example.org/a2"
    assert articles["a2"]["characters"] == len(ARTICLES[1]["text"]) and articles["a1"]["n_symp"] == 1
    texts = {a["article_id"]: a["text"] for a in ARTICLES}
    for row in read_partition(warehouse, "entities", DAY).to_pylist():
        assert texts[row["article_id"]][row["start"] : row["end"]] == row["text"]
    assert count(warehouse, "articles", DAY) + count(warehouse, "rejects", DAY) == read_night(warehouse, DAY)["lines_read"]
    result = check_published(warehouse, DAY)
    assert result.success, str(result)
    assert not list((tmp_path / "warehouse").rglob("_shards"))  # the staged article text is gone


def test_rerun_replaces_only_that_day(params, tmp_path: Path) -> None:
    warehouse = params.nightly.warehouse_dir
    write_inbox(tmp_path, OTHER_DAY, ARTICLES[:1])
    publish_day_checked(params, stage_and_tag(params, OTHER_DAY))
    write_inbox(tmp_path, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    other_before = read_partition(warehouse, "articles", OTHER_DAY).to_pylist()
    write_inbox(tmp_path, DAY, ARTICLES[1:])  # the day's inbox corrected: a1 withdrawn
    publish_day_checked(params, stage_and_tag(params, DAY, version="v2"))
    rows = read_partition(warehouse, "articles", DAY).to_pylist()
    assert sorted(r["article_id"] for r in rows) == ["a2", "a3"] and {r["model_version"] for r in rows} == {"v2"}
    assert count(warehouse, "entities", DAY) == 2
    assert read_partition(warehouse, "articles", OTHER_DAY).to_pylist() == other_before
    for name in DATASETS:  # the tables as any Delta reader sees them: deltalake and DuckDB, same rows
        assert rows_by("deltalake", warehouse, name) == rows_by("duckdb", warehouse, name)
    assert len(rows_by("duckdb", warehouse, "articles")) == 3  # a1 (the other day), a2 and a3


def published_bytes(warehouse: Path) -> dict[str, bytes]:
    """Every file of the Delta tables, their logs included."""
    return {str(p.relative_to(warehouse)): p.read_bytes() for name in (*DATASETS, "nights")
            for p in sorted((warehouse / name).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["corrupt_part", "missing_dataset", "wrong_schema", "no_manifest"])
def test_failed_publish_leaves_the_published_day_intact(params, tmp_path: Path, damage: str) -> None:
    write_inbox(tmp_path, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    before = published_bytes(tmp_path / "warehouse")
    staging = Path(stage_and_tag(params, DAY, version="v2"))
    if damage == "corrupt_part":  # a staging write that died half-way
        part = next((staging / "entities").glob("*.parquet"))
        part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    elif damage == "missing_dataset":
        for part in (staging / "articles").glob("*.parquet"):
            part.unlink()
    elif damage == "wrong_schema":
        table = pq.read_table(next((staging / "rejects").glob("*.parquet")))
        pq.write_table(table.drop_columns(["detail"]), next((staging / "rejects").glob("*.parquet")))
    else:
        (staging / "_manifest.json").unlink()
    with pytest.raises(PublishError):
        publish_day_checked(params, str(staging))
    assert published_bytes(tmp_path / "warehouse") == before


def test_a_night_failing_its_check_is_not_published_and_gets_data_docs(params, tmp_path: Path) -> None:
    write_inbox(tmp_path, DAY, ARTICLES[2:])
    shards = stage_day(params, DAY, day_files(params.nightly.inbox_dir, DAY))
    for shard in shards:
        articles = read_shard(shard)
        bad = [[Entity("DISE", "壓高?", 1, 4, 0.9)] for _ in articles]  # ends past the 3-character article
        write_tagged(shard, [(articles, bad)], "v1")
    with pytest.raises(CheckFailed, match="expect_column_pair_values_a_to_be_greater_than_b"):
        check_version(params.nightly.warehouse_dir, version_dir_of(shards[0]))
    with pytest.raises(PublishError, match="not checked, or its check failed"):
        publish_day(params.nightly, version_dir_of(shards[0]))
    assert read_partition(params.nightly.warehouse_dir, "entities", DAY).num_rows == 0  # nothing published
    assert (tmp_path / "warehouse" / "_reports" / f"dt={DAY}" / "index.html").is_file()  # the night's Data Docs


def test_vacuum_and_compaction_keep_every_row_and_drop_superseded_files(params, tmp_path: Path) -> None:
    warehouse = params.nightly.warehouse_dir
    write_inbox(tmp_path, DAY, ARTICLES)
    for version in ("v1", "v2"):  # two shards each, the second night replaces the first
        publish_day_checked(params, stage_and_tag(params, DAY, version=version))
    before = {name: rows_by("deltalake", warehouse, name) for name in DATASETS}
    articles = DeltaTable(f"{warehouse}/articles")
    day = articles.to_pyarrow_table()  # the day's rows split into three small files, as many writers would leave
    for index, mode in enumerate(("overwrite", "append", "append")):
        write_deltalake(articles, day.slice(index, 1), mode=mode, predicate=f"dt = '{DAY}'" if mode == "overwrite" else None)
    assert len(DeltaTable(f"{warehouse}/articles").file_uris()) == 3
    assert "articles dt=2026-11-24: 3 file(s) -> 1" in compact(warehouse, DAY)
    assert len(DeltaTable(f"{warehouse}/articles").file_uris()) == 1
    on_disk = len(list((tmp_path / "warehouse" / "articles").glob("dt=*/*.parquet")))
    assert "articles: 5 superseded file(s) deleted" in vacuum(warehouse, 0)  # v1's, v2's, the three small ones
    assert len(list((tmp_path / "warehouse" / "articles").glob("dt=*/*.parquet"))) == on_disk - 5 == 1
    assert {name: rows_by("deltalake", warehouse, name) for name in DATASETS} == before
    assert read_day(warehouse, DAY).model_version == "v2"  # the compacted day still reads as its night


def test_migration_keeps_every_published_day_of_the_earlier_layout(params, tmp_path: Path) -> None:
    """A warehouse of the pointer layout, written by hand as that code did: every day moves, counts compared."""
    old = tmp_path / "old"
    rows = {}
    for dt, count_ in ((DAY, 3), (OTHER_DAY, 1)):
        version = f"20261101T000000.000000000Z-{count_:08d}"
        folder = f"_versions/dt={dt}/{version}"
        tables = {"entities": [{"article_id": f"a{i}", "type": "SYMP", "text": "痛", "start": 0, "end": 1, "score": 0.5,
                                "model_version": "m1"} for i in range(count_)],
                  "articles": [{"article_id": f"a{i}", "status": "tagged", "characters": 1, "n_entities": 1,
                                "model_version": "m1"} for i in range(count_)],
                  "rejects": [{"article_id": None, "location": "f:1", "reason": "bad_json", "detail": "x"}]}
        files = {}
        for name, records in tables.items():
            (old / folder / name).mkdir(parents=True)
            pq.write_table(pa.Table.from_pylist(records, schema=SCHEMAS[name]), old / folder / name / "part-0.parquet")
            files[name] = [f"{folder}/{name}/part-0.parquet"]
        rows[dt] = {name: len(records) for name, records in tables.items()}
        pointer = {"dt": dt, "version": version, "rows": rows[dt], "lines_read": count_ + 1, "files": files,
                   "inbox_files": ["x.jsonl"], "replaced": [], "published_at": 0}
        (old / "_published").mkdir(exist_ok=True)
        (old / "_published" / f"dt={dt}.json").write_text(json.dumps(pointer))
    report = migrate(str(old), params.nightly.warehouse_dir)
    assert report.count("read back identical") == 2, report
    for dt in (DAY, OTHER_DAY):
        day = read_day(params.nightly.warehouse_dir, dt)
        assert {name: t.num_rows for name, t in day.tables.items()} == rows[dt]
        assert day.lines_read == rows[dt]["articles"] + 1
    assert migrate(str(old), params.nightly.warehouse_dir) == report  # a rerun changes nothing
