"""Tagging raw text: sentence cuts keep true offsets, entities point back into the input exactly."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from healthner.corpus.labels import TAG_TO_ID, TAGS
from healthner.corpus.windows import split_sentences
from healthner.nightly.tagger import Piece, Tagger, entities_of, length_batches
from healthner.sections.tagging import TagParams

REPO = Path(__file__).resolve().parents[2]
DELIMITERS = TagParams().sentence_delimiters
LONG_ARTICLE = "\n".join([
    "  病人主訴頭痛、發燒（38.5°C）已三天，服用 Panadol 500mg 後仍未改善。",
    "",
    "醫師安排ＣＴ檢查與血液檢驗；結果顯示白血球 WBC 偏高！是否為細菌感染？",
    "\t建議住院觀察 ３ 天，並給予抗生素 amoxicillin 治療。\r",
    "   　 ",
    "維他命Ｃ與益生菌屬於保健食品，不能取代藥物" + "，並注意飲食與睡眠" * 30 + "。",
    "COVID-19 vaccine booster 於 2026 年 11 月施打 " + "A" * 150 + " 結束",
])


def test_split_sentences_keeps_true_offsets() -> None:
    text = "  頭痛。\n\n發燒！  咳嗽；\t\n　\nend"
    pieces = [text[s:e] for s, e in split_sentences(text, DELIMITERS)]
    assert pieces == ["頭痛。", "發燒！", "咳嗽；", "end"]
    assert split_sentences(" \n\t　", DELIMITERS) == [] and split_sentences("", DELIMITERS) == []


def test_every_character_of_the_long_article_is_covered_or_whitespace() -> None:
    covered = set()
    for start, end in split_sentences(LONG_ARTICLE, DELIMITERS):
        covered.update(range(start, end))
    assert all(LONG_ARTICLE[i].isspace() or i in covered for i in range(len(LONG_ARTICLE)))
    assert max(e - s for s, e in split_sentences(LONG_ARTICLE, DELIMITERS)) > 126  # longer than a window


def test_length_batches_bound_characters() -> None:
    pieces = [Piece(0, 0, n) for n in (5, 50, 3, 40, 200, 1)]
    batches = list(length_batches(pieces, 60))
    assert sorted(p for b in batches for p in b) == sorted(pieces)
    assert all(sum(p.end - p.start for p in b) <= 60 or len(b) == 1 for b in batches)


def test_entities_of_shifts_offsets_and_scores_the_chosen_tags() -> None:
    from healthner.ensemble.combiner import Prediction

    text = "xx頭痛yy"
    tags = ["B-SYMP", "I-SYMP", "O", "I-BODY"]  # conlleval: the lone I-BODY opens an entity
    probs = np.full((4, len(TAGS)), 0.01)
    for i, (tag, p) in enumerate(zip(tags, (0.9, 0.7, 0.8, 0.6))):
        probs[i, TAG_TO_ID[tag]] = p
    found = entities_of(text, 2, Prediction(tags, probs))
    assert [(e.type, e.text, e.start, e.end) for e in found] == [("SYMP", "頭痛", 2, 4), ("BODY", "y", 5, 6)]
    assert found[0].score == pytest.approx(0.8) and found[1].score == pytest.approx(0.6)


@pytest.mark.slow
def test_long_mixed_article_offsets_are_exact(tiny_ensemble: Path) -> None:
    tagger = Tagger.load(tiny_ensemble, TagParams(batch_chars=64))
    texts = [LONG_ARTICLE, "", " \n ", "頭痛", LONG_ARTICLE[::-1]]
    found = tagger.tag(texts)
    assert len(found) == len(texts) and found[1] == [] and found[2] == []
    for text, entities in zip(texts, found):
        for entity in entities:
            assert text[entity.start : entity.end] == entity.text
            assert 0 <= entity.start < entity.end <= len(text) and 0.0 <= entity.score <= 1.0
    assert tagger.model_version and tagger.tag(texts) == found  # deterministic


# --- entities begin and end on text, not on controls, format characters or symbols -----------------


def test_entities_never_begin_or_end_on_control_format_symbol_or_space() -> None:
    from healthner.ensemble.combiner import Prediction

    text = "頭痛\u0000發燒\u200b咳嗽😷。 \u0301維他命Ｃ°"
    tags = ["B-SYMP", "I-SYMP", "I-SYMP", "O", "O", "B-SYMP", "I-SYMP", "I-SYMP", "I-SYMP", "O",
            "B-DRUG", "I-DRUG", "I-DRUG", "I-DRUG", "I-DRUG", "I-DRUG", "I-DRUG"]
    assert len(tags) == len(text)
    probs = np.full((len(text), len(TAGS)), 0.5)
    probs[2, TAG_TO_ID["I-SYMP"]] = 0.1  # the trimmed NUL does not count in the score
    found = entities_of(text, 0, Prediction(tags, probs))
    assert [(e.text, e.start, e.end) for e in found] == [("頭痛", 0, 2), ("咳嗽", 6, 8), ("維他命Ｃ", 12, 16)]
    assert all(text[e.start : e.end] == e.text for e in found) and found[0].score == pytest.approx(0.5)
    only_symbols = entities_of("😷\u200b", 0, Prediction(["B-SYMP", "I-SYMP"], np.full((2, len(TAGS)), 0.5)))
    assert only_symbols == []


def test_a_combining_mark_stays_with_its_character() -> None:
    from healthner.nightly.tagger import clean_bounds

    text = "e\u0301x"
    assert clean_bounds(text, 0, 2) == (0, 2) and clean_bounds(text, 1, 3) == (2, 3)


def test_tagging_a_noisy_article_gives_clean_true_spans(random_ensemble: Path) -> None:
    from healthner.nightly.tagger import EDGE_CATEGORIES

    text = "頭痛\u0000發燒\u200b咳嗽😷。\r\n病人\t說：糖尿病 ＆ 膽結石⚕️\ufeff"
    found = Tagger.load(random_ensemble).tag([text])[0]
    assert found  # random weights tag something
    for e in found:
        assert text[e.start : e.end] == e.text
        for edge in (e.text[0], e.text[-1]):
            assert not edge.isspace() and not unicodedata.category(edge).startswith(EDGE_CATEGORIES)


def test_shard_tasks_split_the_cores_between_the_shards_running_at_once() -> None:
    from healthner.config import load_params
    from healthner.nightly.batch import shard_tag_params

    cores = len(os.sched_getaffinity(0))
    params = load_params(REPO / "params.yaml").with_updates(nightly={"shards": 2, "tag_slots": 2},
                                                            tag={"torch_threads": None})
    assert shard_tag_params(params).torch_threads == max(1, cores // 2)
    alone = params.with_updates(nightly={"tag_slots": 1})  # one tag task per machine
    assert shard_tag_params(alone).torch_threads == cores
    fixed = params.with_updates(tag={"torch_threads": 3})
    assert shard_tag_params(fixed).torch_threads == min(3, max(1, cores // 2))  # set by hand, within the share


@pytest.mark.slow
def test_onnx_and_torch_runtimes_find_the_same_entities(tiny_ensemble: Path) -> None:
    import torch

    from healthner.model.onnx_runtime import ONNX_FILE

    members = json.loads((tiny_ensemble / "ensemble.json").read_text())["members"]
    assert all((tiny_ensemble / slot / ONNX_FILE).is_file() for slot in members)
    texts = [LONG_ARTICLE, "頭痛", LONG_ARTICLE[::-1]]
    by_torch = Tagger.load(tiny_ensemble, TagParams(runtime="torch", device="cpu"))
    by_onnx = Tagger.load(tiny_ensemble, TagParams(runtime="onnx", device="cpu"))
    assert by_torch.batch_chars == TagParams().batch_chars
    assert all(p.runner is not None for p in by_onnx.ensemble.predictors.values())
    assert all(p.runner is None and p.device == torch.device("cpu") for p in by_torch.ensemble.predictors.values())
    spans_of = lambda found: [[(e.type, e.start, e.end) for e in es] for es in found]
    torch_found, onnx_found = by_torch.tag(texts), by_onnx.tag(texts)
    assert spans_of(onnx_found) == spans_of(torch_found)
    scores = [(a.score, b.score) for x, y in zip(torch_found, onnx_found) for a, b in zip(x, y)]
    assert all(abs(a - b) < 1e-3 for a, b in scores)
