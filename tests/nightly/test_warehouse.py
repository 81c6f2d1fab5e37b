"""Publishing a day without a model: real inbox files staged, parts written with hand-placed
entities (the writer the tagging task uses), real Parquet, DuckDB and GX."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from healthner.nightly.batch import write_tagged
from healthner.nightly.checks import CheckFailed, check_published, check_version
from healthner.nightly.inbox import day_files
from healthner.nightly.publish import publish_day
from healthner.nightly.stage import read_shard, stage_day
from healthner.nightly.tagger import Entity
from healthner.nightly.warehouse import (
    ARTICLES_SCHEMA,
    ENTITIES_SCHEMA,
    REJECTS_SCHEMA,
    PublishError,
    read_manifest,
    read_partition,
    version_dir_of,
)
from tests.nightly.nights import ARTICLES, DAY, OTHER_DAY, night_params, publish_day_checked, stage_and_tag, write_inbox


@pytest.fixture
def params(tmp_path: Path):
    return night_params(tmp_path)


def count(warehouse: str, dataset: str, dt: str) -> int:
    sql = f"SELECT count(*) FROM read_parquet('{warehouse}/{dataset}/dt=*/*.parquet', hive_partitioning = true)"
    return duckdb.sql(f"{sql} WHERE dt = '{dt}'").fetchall()[0][0]


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
    assert count(warehouse, "articles", DAY) + count(warehouse, "rejects", DAY) == read_manifest(warehouse, DAY)["lines_read"]
    result = check_published(warehouse, DAY)
    assert result.success, str(result)
    assert not list((tmp_path / "warehouse").rglob("_shards"))  # the staged article text is gone


def test_rerun_replaces_only_that_day(params, tmp_path: Path) -> None:
    warehouse = params.nightly.warehouse_dir
    write_inbox(tmp_path, OTHER_DAY, ARTICLES[:1])
    publish_day_checked(params, stage_and_tag(params, OTHER_DAY))
    write_inbox(tmp_path, DAY, ARTICLES)
    publish_day_checked(params, stage_and_tag(params, DAY))
    other_before = pq.read_table(f"{warehouse}/articles/dt={OTHER_DAY}").to_pylist()
    write_inbox(tmp_path, DAY, ARTICLES[1:])  # the day's inbox corrected: a1 withdrawn
    publish_day_checked(params, stage_and_tag(params, DAY, version="v2"))
    rows = read_partition(warehouse, "articles", DAY).to_pylist()
    assert sorted(r["article_id"] for r in rows) == ["a2", "a3"] and {r["model_version"] for r in rows} == {"v2"}
    assert count(warehouse, "entities", DAY) == 2
    assert pq.read_table(f"{warehouse}/articles/dt={OTHER_DAY}").to_pylist() == other_before


def published_bytes(warehouse: Path) -> dict[str, bytes]:
    return {str(p.relative_to(warehouse)): p.read_bytes() for p in sorted(warehouse.glob("*/dt=*/*.parquet"))}


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
