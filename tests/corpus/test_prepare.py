"""The split and the per-encoder tokenisation, on real corpus sentences."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from healthner.config import load_params
from healthner.corpus.labels import TAGS
from healthner.corpus.prepare import assign_splits, split_sentences, tokenize_split
from healthner.corpus.readers import read_conll
from healthner.corpus.vocab import CharVocab
from healthner.corpus.windows import merge_windows

PARAMS = load_params("params.yaml")


@pytest.fixture(scope="module")
def ft_sentences():
    return read_conll(PARAMS.data.corpus_dir / "rocling2023_multiner_FT.txt", "FT").sentences


def test_split_is_deterministic_and_seeded(ft_sentences):
    first = assign_splits(ft_sentences, PARAMS.split)
    assert first == assign_splits(list(reversed(ft_sentences)), PARAMS.split)[::-1]
    dev_share = first.count("dev") / len(first)
    assert abs(dev_share - PARAMS.split.dev_fraction) < 0.03
    other_seed = PARAMS.split.model_copy(update={"seed": PARAMS.split.seed + 1})
    assert assign_splits(ft_sentences, other_seed) != first


def test_test_source_goes_to_test_only(ft_sentences):
    held_out = PARAMS.split.model_copy(update={"test_sources": ["rocling2023_multiner_FT.txt"]})
    assert set(assign_splits(ft_sentences, held_out)) == {"test"}


def test_duplicates_of_test_text_are_dropped_and_counted(ft_sentences):
    sents = ft_sentences[:50]
    twin = read_conll(PARAMS.data.corpus_dir / "rocling2023_multiner_FT.txt", "FT").sentences[0]
    twin.source = "rocling2023_multiner_WA.txt"  # same text, now in the test split
    by_split, dropped = split_sentences([*sents, twin], PARAMS.split)
    assert dropped == 1
    assert sum(len(v) for v in by_split.values()) == len(sents)
    assert twin.text not in {s.text for s in by_split["train"] + by_split["dev"]}


def test_windows_round_trip_one_id_per_character(ft_sentences, tmp_path):
    longest = sorted(ft_sentences, key=lambda s: len(s.chars))[-20:]
    assert max(len(s.chars) for s in longest) > 126  # the real corpus has sentences longer than a window
    vocab = CharVocab.build(s.chars for s in ft_sentences[:200])  # built on a subset: some chars are unknown
    path = tmp_path / "windows.parquet"
    n_windows, unknown = tokenize_split(longest, vocab, 126, 32, path)
    rows = pq.read_table(path).to_pylist()
    assert len(rows) == n_windows > len(longest) and unknown > 0
    for sentence in longest:
        mine = [r for r in rows if r["sent_id"] == sentence.sent_id]
        spans_ = [(r["offset"], r["offset"] + r["n_chars"]) for r in mine]
        for r in mine:
            assert len(r["input_ids"]) == r["n_chars"] + 2 == len(r["label_ids"]) + 2
            assert r["input_ids"][0] == vocab.cls_id and r["input_ids"][-1] == vocab.sep_id
        chars = merge_windows(len(sentence.chars), spans_, [np.array(r["chars"], dtype=object) for r in mine])
        labels = merge_windows(len(sentence.chars), spans_, [np.array(r["label_ids"]) for r in mine])
        assert "".join(chars) == sentence.text
        assert [TAGS[i] for i in labels] == sentence.tags


def test_unknown_characters_map_to_unk_and_fullwidth_falls_back():
    vocab = CharVocab.build([list("abc1")])
    ids, unknown = vocab.encode(list("ａb１?"))  # full-width a and 1 fold to ASCII for lookup only
    assert ids[:3] == [vocab.char_id("a"), vocab.char_id("b"), vocab.char_id("1")]
    assert ids[3] == vocab.unk_id and unknown == 1


def test_vocab_saves_and_loads_line_breaks(tmp_path):
    vocab = CharVocab.build([["\n", "a", "\\", "\r"]])
    vocab.save(tmp_path)
    assert CharVocab.load(tmp_path).tokens == vocab.tokens
