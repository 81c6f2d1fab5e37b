"""The corpus readers on small hand-written files: what they keep, what they report, and where."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from healthner.corpus.formats import read_corpus_file
from healthner.corpus.labels import TAGS
from healthner.corpus.readers import (
    Sentence,
    read_conll,
    read_healthner_jsonl,
    read_sentences,
    write_sentences,
)
from healthner.sections.corpus import CorpusFile


def conll(path: Path, *sentences: list[str], eol: str = "\r\n") -> Path:
    """Write sentences (lists of 'CHAR TAG' lines) as a CoNLL file with an empty line after each."""
    path.write_bytes("".join(eol.join(lines) + eol * 2 for lines in sentences).encode("utf-8"))
    return path


def record(sid: str, text: str, tags: list[str], genre: str = "ft") -> str:
    return json.dumps(
        {"id": sid, "genre": genre, "sentence": text, "word": [], "word_label": [],
         "character": list(text), "character_label": tags},
        ensure_ascii=False,
    )


def found(result) -> list[tuple[int, str, str]]:
    return [(d.line, d.check, d.severity) for d in result.defects]


# --- CoNLL ---------------------------------------------------------------------------------------------


def test_conll_reads_sentences_with_their_first_line(tmp_path: Path) -> None:
    path = conll(tmp_path / "x_FT.txt", ["頭 B-BODY", "痛 I-BODY"], ["吃 O", "藥 B-DRUG"])
    result = read_conll(path, "FT")
    assert result.defects == [] and result.sentences_seen == 2
    assert [(s.sent_id, s.line, s.text, s.tags) for s in result.sentences] == [
        ("x_FT:00001", 1, "頭痛", ["B-BODY", "I-BODY"]),
        ("x_FT:00002", 4, "吃藥", ["O", "B-DRUG"]),
    ]


def test_conll_a_space_can_be_the_character(tmp_path: Path) -> None:
    result = read_conll(conll(tmp_path / "x.txt", ["A O", "  O", "B O"]), "FT")
    assert result.sentences[0].chars == ["A", " ", "B"]


def test_conll_lf_only_and_no_final_separator(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("頭 B-BODY\n痛 I-BODY\n\n吃 O".encode())
    result = read_conll(path, "FT")
    assert [s.text for s in result.sentences] == ["頭痛", "吃"] and result.defects == []


@pytest.mark.parametrize(
    ("line", "check"),
    [("頭", "field_count"), ("頭 O O", "field_count"), ("頭 B-FOO", "unknown_tag"), ("頭 b-BODY", "unknown_tag")],
)
def test_conll_bad_line_breaks_only_its_sentence(tmp_path: Path, line: str, check: str) -> None:
    path = conll(tmp_path / "x.txt", ["吃 O", line, "藥 B-DRUG"], ["痛 B-SYMP"])
    result = read_conll(path, "FT")
    assert found(result) == [(2, check, "error")]
    assert result.sentences_seen == 2 and [s.text for s in result.sentences] == ["痛"]


@pytest.mark.parametrize(("bad", "check"), [(b"\xff O", "invalid_utf8"), (b"\xe9\xa0\xad\rO", "lone_cr")])
@pytest.mark.parametrize("where", ["middle", "last line of the file"])
def test_conll_undecodable_line_breaks_its_sentence(tmp_path: Path, bad: bytes, check: str, where: str) -> None:
    """The line is skipped by the decoder; its sentence must not survive one character short."""
    path = tmp_path / "x.txt"
    rest = "\r\n苦 O\r\n\r\n".encode() if where == "middle" else b""
    path.write_bytes("吃 O\r\n藥 B-DRUG\r\n\r\n痛 B-SYMP\r\n".encode() + bad + rest)
    result = read_conll(path, "FT")
    assert found(result) == [(5, check, "error")]
    assert result.sentences_seen == 2 and [s.text for s in result.sentences] == ["吃藥"]


def test_conll_sentence_of_only_bad_lines_is_still_counted(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("吃 O\r\n\r\n".encode() + b"\xff O\r\n\r\n" + "痛 B-SYMP\r\n".encode())
    result = read_conll(path, "FT")
    assert found(result) == [(3, "invalid_utf8", "error")]
    assert result.sentences_seen == 3 and len(result.sentences) == 2


def test_conll_bom_is_removed_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "頭 B-BODY\r\n\r\n".encode())
    result = read_conll(path, "FT")
    assert found(result) == [(1, "bom", "repaired")] and result.sentences[0].chars == ["頭"]


def test_conll_double_separator_is_a_rejected_empty_sentence(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes("吃 O\r\n\r\n\r\n痛 B-SYMP\r\n\r\n".encode())
    result = read_conll(path, "FT")
    assert found(result) == [(3, "empty_sentence", "rejected")]
    assert result.sentences_seen == 3 and [s.line for s in result.sentences] == [1, 4]


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n", b"   \n"])
def test_empty_file_is_one_defect(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(content)
    assert found(read_conll(path, "FT")) == [(0, "file_empty", "error")]


def test_missing_file_is_one_defect(tmp_path: Path) -> None:
    result = read_corpus_file(tmp_path / "nope_FT.txt", CorpusFile(name="nope_FT.txt", format="conll", genre="FT"))
    assert [str(d) for d in result.defects] == [f"{tmp_path / 'nope_FT.txt'}:0: file not found"]


def test_conll_genre_is_the_entrys_never_the_file_name(tmp_path: Path) -> None:
    mine = conll(tmp_path / "mydata.txt", ["吃 O"])
    assert read_corpus_file(mine, CorpusFile(name="mydata.txt", format="conll", genre="SM")).sentences[0].genre == "SM"
    named = conll(tmp_path / "rocling_sm.txt", ["吃 O"])
    assert read_corpus_file(named, CorpusFile(name="rocling_sm.txt", format="conll", genre="WA")).sentences[0].genre == "WA"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"name": "rocling_sm.txt", "format": "conll"}, "rocling_sm.txt: a conll file needs `genre`"),
        ({"name": "fixes.json", "format": "labelstudio_json"}, "fixes.json: a labelstudio_json file needs `genre`"),
        (
            {"name": "a.jsonl", "format": "healthner_jsonl", "genre": "FT"},
            "a.jsonl: healthner_jsonl records carry their own genre",
        ),
    ],
)
def test_a_genre_has_one_owner(entry: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        CorpusFile(**entry)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValidationError, match="labelstudio_json"):
        CorpusFile(name="x.csv", format="csv", genre="FT")


# --- JSON lines ----------------------------------------------------------------------------------------


def jsonl(path: Path, *lines: str) -> Path:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode("utf-8"))
    return path


def test_jsonl_reads_records_with_their_line(tmp_path: Path) -> None:
    lines = [record("001", "頭痛", ["B-SYMP", "I-SYMP"]), "", record("002", "吃", ["O"], "sm")]
    path = jsonl(tmp_path / "h.jsonl", *lines)
    result = read_healthner_jsonl(path)
    assert result.defects == [] and result.sentences_seen == 2
    assert [(s.sent_id, s.line, s.genre, s.text) for s in result.sentences] == [
        ("h:001", 1, "FT", "頭痛"),
        ("h:002", 3, "SM", "吃"),
    ]


@pytest.mark.parametrize(
    ("line", "check"),
    [
        ('{"id": "1", ', "json_invalid"),
        ('["not", "an", "object"]', "field_count"),
        (json.dumps({"id": "1", "genre": "ft", "sentence": "吃"}), "field_count"),
        (record("1", "吃藥", ["O"]), "length_mismatch"),
        (record("1", "吃", ["B-FOO"]), "unknown_tag"),
        (record("1", "吃藥", ["O"]).replace('["吃", "藥"]', '["吃藥"]'), "token_not_one_char"),
        (record("1", "吃", ["O"]).replace('"sentence": "吃"', '"sentence": "藥"'), "text_mismatch"),
    ],
)
def test_jsonl_bad_record_is_an_error_at_its_line(tmp_path: Path, line: str, check: str) -> None:
    path = jsonl(tmp_path / "h.jsonl", record("0", "吃", ["O"]), line)
    result = read_healthner_jsonl(path)
    assert found(result) == [(2, check, "error")]
    assert result.sentences_seen == 2 and len(result.sentences) == 1


def test_jsonl_empty_sentence_is_rejected(tmp_path: Path) -> None:
    result = read_healthner_jsonl(jsonl(tmp_path / "h.jsonl", record("0", "", [])))
    assert found(result) == [(1, "empty_sentence", "rejected")] and result.sentences_seen == 1


# --- the canonical table and a round trip ---------------------------------------------------------------

# any character but a line break (CR, LF), a lone surrogate (not encodable) and U+FEFF (a BOM at the start)
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\ufeff")
SENTENCE = st.lists(st.tuples(CHARS, st.sampled_from(TAGS)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=st.lists(SENTENCE, min_size=1, max_size=5))
def test_conll_round_trip_keeps_every_character(tmp_path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    """Whatever one-character tokens are written (spaces, symbols, controls) come back unchanged."""
    path = conll(tmp_path / "rt.txt", *[[f"{c} {t}" for c, t in s] for s in sentences])
    result = read_conll(path, "FT")
    assert result.defects == [] and result.sentences_seen == len(sentences)
    assert [(s.chars, s.tags) for s in result.sentences] == [([c for c, _ in s], [t for _, t in s]) for s in sentences]


def test_parquet_round_trip(tmp_path: Path) -> None:
    sentences = [Sentence("a:1", "a.txt", "FT", 3, ["頭", "\b"], ["B-BODY", "O"])]
    write_sentences(sentences, tmp_path / "c.parquet")
    assert read_sentences(tmp_path / "c.parquet") == sentences


def test_read_sentences_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="c.parquet: not found"):
        read_sentences(tmp_path / "c.parquet")
