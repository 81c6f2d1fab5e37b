"""Tagging in a pool of processes: the same entities as one Tagger, the work split evenly."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from healthner.config import load_params
from healthner.nightly.pool import TaggerPool, balanced_groups, load_tagging, tagging_processes, usable_cores
from healthner.nightly.tag_files import tag_files
from healthner.nightly.tagger import Tagger
from healthner.sections.tagging import TagParams

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["病人主訴頭痛、發燒已三天。服用普拿疼後仍未改善。", "", "醫師安排電腦斷層檢查；結果顯示白血球偏高！",
         "建議住院觀察三天，並給予抗生素治療。" * 3, "維他命Ｃ與益生菌屬於保健食品。", "咳嗽", "  \n "] * 3


@pytest.mark.parametrize("sizes, groups", [([5, 5, 5, 5], 2), ([1, 100, 1, 1], 2), ([3] * 7, 3), ([2, 2], 5), ([], 2)])
def test_groups_are_contiguous_cover_every_text_and_split_the_characters_evenly(sizes: list[int], groups: int) -> None:
    texts = ["字" * n for n in sizes]
    found = balanced_groups(texts, groups)
    assert [i for group in found for i in group] == list(range(len(texts)))
    assert len(found) <= groups and all(len(group) for group in found)
    if sizes == [5, 5, 5, 5]:
        assert [list(g) for g in found] == [[0, 1], [2, 3]]


def test_processes_follow_the_device_the_input_size_and_the_settings() -> None:
    auto = TagParams(pool_min_chars=100)
    assert tagging_processes(auto, "cuda") == 1 and tagging_processes(auto, "cuda:0") == 1
    assert tagging_processes(auto, "cpu", chars=99) == 1
    assert tagging_processes(auto, "cpu", chars=100) == usable_cores()
    assert tagging_processes(auto.model_copy(update={"torch_threads": 64}), "cpu") == 1
    assert tagging_processes(auto.model_copy(update={"workers": 3}), "cpu") == 3


def test_a_pool_tags_exactly_what_one_tagger_does(random_ensemble: Path) -> None:
    params = TagParams(device="cpu")
    assert isinstance(load_tagging(random_ensemble, params.model_copy(update={"workers": 1})), Tagger)
    assert isinstance(load_tagging(random_ensemble, params, chars=10), Tagger)  # under tag.pool_min_chars
    alone = Tagger.load(random_ensemble, params).tag(TEXTS)
    with TaggerPool(random_ensemble, params, "cpu", processes=2) as pool:
        assert pool.params.torch_threads == max(1, usable_cores() // 2) and pool.params.workers == 1
        pooled = pool.tag(TEXTS)
        assert pool.model_version == Tagger.load(random_ensemble, params).model_version
        assert pool.tag([]) == []
    assert [[(e.type, e.start, e.end, e.text) for e in found] for found in pooled] == \
        [[(e.type, e.start, e.end, e.text) for e in found] for found in alone]
    assert [e.score for found in pooled for e in found] == pytest.approx([e.score for found in alone for e in found],
                                                                         abs=1e-5)
    assert sum(map(len, alone)) > 0


def test_tag_file_on_a_pool_writes_the_rows_one_process_writes(random_ensemble: Path, tmp_path: Path) -> None:
    source = tmp_path / "articles.jsonl"
    source.write_text("".join(json.dumps({"article_id": f"a{i}", "text": t}, ensure_ascii=False) + "\n"
                              for i, t in enumerate(TEXTS)), encoding="utf-8")
    base = load_params(REPO / "params.yaml")
    tables = {}
    for workers in (1, 2):
        params = base.with_updates(tag={"workers": workers, "pool_min_chars": 1, "device": "cpu"})
        summary = tag_files(params, random_ensemble, source, tmp_path / f"out{workers}.parquet")
        tables[workers] = pq.read_table(summary.output).to_pylist()
    assert tables[1] and [{k: r[k] for k in ("article_id", "type", "start", "end")} for r in tables[2]] == \
        [{k: r[k] for k in ("article_id", "type", "start", "end")} for r in tables[1]]
