"""Observability (issue 17.5): the nightly steps log counts, shard progress and timings through
Python logging (what Airflow's task log shows); progress bars stay off when stderr is not a terminal."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from healthner.config import load_params
from healthner.nightly.batch import tag_shard
from healthner.nightly.day import stage_day
from healthner.nightly.inbox import day_files, read_inbox_file
from healthner.nightly.tag_files import tag_chunks
from healthner.nightly.tagger import Tagger

REPO = Path(__file__).resolve().parents[2]
DT = "2026-11-24"


def test_stage_and_tag_log_counts_progress_and_timings(random_ensemble: Path, tmp_path: Path, caplog) -> None:
    day = tmp_path / "inbox" / f"dt={DT}"
    day.mkdir(parents=True)
    lines = [json.dumps({"article_id": str(i), "text": "頭痛發燒。" * (i + 1)}, ensure_ascii=False) for i in range(3)]
    (day / "a.jsonl").write_text("\n".join([*lines, "{bad"]) + "\n", encoding="utf-8")
    params = load_params(REPO / "params.yaml").with_updates(nightly={
        "inbox_dir": str(tmp_path / "inbox"), "warehouse_dir": str(tmp_path / "warehouse"), "shards": 1,
        "chunk_articles": 1, "model_dir": str(random_ensemble)})
    with caplog.at_level(logging.INFO, logger="healthner"):
        shards = stage_day(params, DT, day_files(params.nightly.inbox_dir, DT))
        tag_shard(params, shards[0], Tagger.load(random_ensemble))
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("healthner.")]
    assert any("1 file(s)" in m for m in messages)
    assert any(f"stage dt={DT}: 1 file(s), 4 line(s) read -> 3 article(s), 1 reject(s) {{'invalid_json': 1}}" in m
               for m in messages)
    assert any("chunk 1/3" in m for m in messages) and any("chunk 3/3, 3 article(s)" in m for m in messages)
    assert any("entities in" in m and " s" in m for m in messages)
    assert any("model_version" in m for m in messages)  # the ensemble says which model it loaded


def test_no_progress_bar_when_not_on_a_terminal(
    random_ensemble: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"article_id": "a", "text": "頭痛"}) + "\n", encoding="utf-8")
    articles, _ = read_inbox_file(str(path))
    list(tag_chunks(Tagger.load(random_ensemble), [articles]))
    assert "article/s" not in capsys.readouterr().err and "it/s" not in capsys.readouterr().err
