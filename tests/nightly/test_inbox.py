"""Inbox reading: every unusable line is a reject with file:line and a reason; counts reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from healthner.corpus.readers import read_conll
from healthner.nightly.batch import sample_articles
from healthner.nightly.day import assign_shards, read_day
from healthner.nightly.inbox import (
    DUPLICATE_ID,
    EMPTY_TEXT,
    INVALID_JSON,
    INVALID_UTF8,
    MISSING_ID,
    MISSING_TEXT,
    TOO_LONG,
    day_files,
    read_inbox_file,
)
from healthner.nightly.inputs import read_input

REPO = Path(__file__).resolve().parents[2]
WA = REPO.parent / "shared" / "data" / "rocling2023_multiner_WA.txt"
MAX_CHARS = 50


def line(**record) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def write(path: Path, lines: list[bytes], newline: bytes = b"\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines) + newline)
    return path


def test_every_reject_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [
        line(article_id="ok", text="頭痛。", title="t", source="s", url="u", published_at="2026-11-24", extra=1),
        line(article_id="e", text="   "),
        b"{not json",
        line(text="無編號"),
        line(article_id="ok", text="再一次"),
        b'{"article_id": "bytes", "text": "\xff\xfe"}',
        line(article_id="long", text="長" * (MAX_CHARS + 1)),
        line(article_id="nt", text=None),
        b"[1, 2]",
        b"   ",
        line(article_id=7, text="數字編號"),
    ])
    articles, rejects = read_inbox_file(str(path), MAX_CHARS)
    assert [a.article_id for a in articles] == ["ok", "7"]
    assert articles[0].title == "t" and articles[0].published_at == "2026-11-24" and articles[0].location == "a.jsonl:1"
    assert [(r.article_id, r.location, r.reason) for r in rejects] == [
        ("e", "a.jsonl:2", EMPTY_TEXT), (None, "a.jsonl:3", INVALID_JSON), (None, "a.jsonl:4", MISSING_ID),
        ("ok", "a.jsonl:5", DUPLICATE_ID), ("bytes", "a.jsonl:6", INVALID_UTF8), ("long", "a.jsonl:7", TOO_LONG),
        ("nt", "a.jsonl:8", MISSING_TEXT), (None, "a.jsonl:9", INVALID_JSON),
    ]  # line 10 is blank: not a record


def test_crlf_bom_and_duplicates_across_files(tmp_path: Path) -> None:
    day = tmp_path / "inbox" / "dt=2026-11-24"
    write(day / "a.jsonl", [b"\xef\xbb\xbf" + line(article_id="x", text="一\r\n二")], newline=b"\r\n")
    write(day / "b.jsonl", [line(article_id="x", text="重複"), line(article_id="y", text="新的")])
    files = day_files(str(tmp_path / "inbox"), "2026-11-24")
    assert [Path(f).name for f in files] == ["a.jsonl", "b.jsonl"]
    read = read_day(files, MAX_CHARS)
    assert [a.text for a in read.articles] == ["一\r\n二", "新的"]
    assert [(r.location, r.reason) for r in read.rejects] == [("b.jsonl:1", DUPLICATE_ID)]
    assert read.lines_read == len(read.articles) + len(read.rejects) == 3


def test_parquet_input_is_checked_like_json_lines(tmp_path: Path) -> None:
    import pyarrow as pa

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"article_id": ["a", "a", None], "text": ["胃痛", "胃痛", "x"]}), path)
    read = read_input(path, MAX_CHARS)
    assert [a.article_id for a in read.articles] == ["a"]
    assert [(r.location, r.reason) for r in read.rejects] == [("in.parquet:2", DUPLICATE_ID), ("in.parquet:3", MISSING_ID)]


def test_shards_are_balanced_and_complete(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [line(article_id=str(i), text="字" * (i + 1)) for i in range(20)])
    articles, _ = read_inbox_file(str(path), MAX_CHARS)
    shards = assign_shards(articles, 3)
    assert sorted(a.article_id for s in shards for a in s) == sorted(a.article_id for a in articles)
    loads = [sum(len(a.text) for a in s) for s in shards]
    assert max(loads) - min(loads) <= max(len(a.text) for a in articles)
    assert assign_shards(articles[:1], 2)[1] == []  # a shard may be empty, never missing


def test_sample_articles_keep_one_source_each() -> None:
    sentences = read_conll(WA, "WA").sentences[:50]
    records = sample_articles(sentences, 7, "2026-11-24")
    assert len(records) == 7 and len({r["article_id"] for r in records}) == 7
    joined = "\n".join(r["text"] for r in records)
    assert joined == "\n".join(s.text for s in sentences[: len(joined.split("\n"))])


# --- issue 18.1: no line stops the night ---------------------------------------------------------


def test_a_hostile_line_is_a_reject_and_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    from healthner.nightly.day import rejects_table
    from healthner.nightly.inbox import INVALID_TEXT

    hostile = [
        b"[" * 100_000 + b"]" * 100_000,                                      # RecursionError in the decoder
        b'{"article_id": "n", "text": "x", "n": ' + b"9" * 5_000 + b"}",       # int digit limit (ValueError)
        b'{"article_id": ' + b"1" * 5_000 + b', "text": "x"}',
        b'{"article_id": "s1", "text": "\\ud800\xe9\xa0\xad\xe7\x97\x9b"}',    # lone surrogate in the text
        b'{"article_id": "\\udfff", "text": "x"}',                           # ... in the id
        b'{"article_id": "s3", "text": "x", "title": "\\ud83d"}',            # ... in the title
        b'{"article_id": "ctl", "text": "a\x01b"}',                           # raw control character
    ]
    lines = [line(article_id="first", text="頭痛"), *hostile, line(article_id="last", text="發燒")]
    path = write(tmp_path / "a.jsonl", lines)
    articles, rejects = read_inbox_file(str(path), MAX_CHARS)
    assert [a.article_id for a in articles] == ["first", "last"]
    assert [(r.location, r.reason) for r in rejects] == [
        ("a.jsonl:2", INVALID_JSON), ("a.jsonl:3", INVALID_JSON), ("a.jsonl:4", INVALID_JSON),
        ("a.jsonl:5", INVALID_TEXT), ("a.jsonl:6", INVALID_TEXT), ("a.jsonl:7", INVALID_TEXT), ("a.jsonl:8", INVALID_JSON),
    ]
    assert rejects[0].detail == "nested too deeply to decode" and "4300" in rejects[1].detail
    assert rejects[3].article_id == "s1" and rejects[4].article_id is None and "title" in rejects[5].detail
    assert rejects[6].detail == "Invalid control character at column 33"  # once "at at column"
    pq.write_table(rejects_table(rejects), tmp_path / "rejects.parquet")  # every reject is storable


def test_invalid_utf8_salvage_never_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [b"\xff" + b"[" * 100_000, b'{"article_id": "\\ud800", "text": "\xff"}'])
    _, rejects = read_inbox_file(str(path), MAX_CHARS)
    assert [(r.article_id, r.reason) for r in rejects] == [(None, INVALID_UTF8), (None, INVALID_UTF8)]


# --- the id rule: JSON strings or integers, as stripped text, bounded ---------------------------


def test_article_ids_are_strings_or_integers_stripped_and_bounded(tmp_path: Path) -> None:
    from healthner.nightly.inbox import INVALID_ID

    path = write(tmp_path / "a.jsonl", [
        line(article_id=1, text="一"), line(article_id="1", text="二"), line(article_id=" g1", text="三"),
        line(article_id="g1\t", text="四"), line(article_id=1.0, text="五"), line(article_id=True, text="六"),
        line(article_id=["x"], text="七"), line(article_id="i" * 9, text="八"), line(article_id="   ", text="九"),
    ])
    articles, rejects = read_inbox_file(str(path), MAX_CHARS, max_id_chars=8)
    assert [(a.article_id, a.text) for a in articles] == [("1", "一"), ("g1", "三")]
    assert [(r.location, r.reason) for r in rejects] == [
        ("a.jsonl:2", DUPLICATE_ID), ("a.jsonl:4", DUPLICATE_ID), ("a.jsonl:5", INVALID_ID), ("a.jsonl:6", INVALID_ID),
        ("a.jsonl:7", INVALID_ID), ("a.jsonl:8", INVALID_ID), ("a.jsonl:9", MISSING_ID),
    ]
    assert "9 characters > 8" in rejects[5].detail


def test_the_id_bound_is_the_nightly_param() -> None:
    from healthner.nightly.inbox import MAX_ID_CHARS
    from healthner.sections.tagging import NightlyParams

    assert MAX_ID_CHARS == NightlyParams().max_article_id_chars


# --- issue 18.9: nothing lost by format ---------------------------------------------------------


def test_cr_only_files_are_read_line_by_line(tmp_path: Path) -> None:
    path = write(tmp_path / "mac.jsonl", [line(article_id=str(i), text="頭痛") for i in range(3)] + [b"{bad"], newline=b"\r")
    articles, rejects = read_inbox_file(str(path), MAX_CHARS)
    assert [a.article_id for a in articles] == ["0", "1", "2"]
    assert [(r.location, r.reason) for r in rejects] == [("mac.jsonl:4", INVALID_JSON)]


def test_every_file_of_a_day_is_read_or_rejected(tmp_path: Path) -> None:
    from healthner.nightly.inbox import NOT_JSONL

    day = tmp_path / "inbox" / "dt=2026-11-24"
    write(day / "a.jsonl", [line(article_id="a", text="頭痛")])
    write(day / "B.JSONL", [line(article_id="b", text="發燒"), b"{"])
    write(day / "late" / "c.Jsonl", [line(article_id="c", text="咳嗽")])
    write(day / "notes.txt", [b"not an inbox file"])
    files = day_files(str(tmp_path / "inbox"), "2026-11-24")
    assert sorted(Path(f).name for f in files) == ["B.JSONL", "a.jsonl", "c.Jsonl", "notes.txt"]
    read = read_day(files, MAX_CHARS)
    assert sorted(a.article_id for a in read.articles) == ["a", "b", "c"]
    assert sorted((r.location, r.reason) for r in read.rejects) == [("B.JSONL:2", INVALID_JSON), ("notes.txt:0", NOT_JSONL)]
    assert {a.location for a in read.articles} >= {"late/c.Jsonl:1"}
    assert read.lines_read == len(read.articles) + len(read.rejects) == 5
    assert day_files(str(tmp_path / "inbox"), "2026-11-25") == []


def test_an_unreadable_file_is_a_reject(tmp_path: Path) -> None:
    from healthner.nightly.inbox import UNREADABLE_FILE

    read = read_day([str(tmp_path / "dt=2026-11-24" / "gone.jsonl")], MAX_CHARS)
    assert [(r.location, r.reason) for r in read.rejects] == [("gone.jsonl:0", UNREADABLE_FILE)] and read.lines_read == 1


def test_tag_input_in_any_name_is_json_lines_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    import pytest

    from healthner.errors import HealthnerError

    path = write(tmp_path / "articles.json", [line(article_id="a", text="頭痛")])
    assert [a.article_id for a in read_input(path, MAX_CHARS).articles] == ["a"]
    with pytest.raises(HealthnerError, match="input file not found"):
        read_input(tmp_path / "missing.jsonl", MAX_CHARS)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(HealthnerError, match="not a readable Parquet"):
        read_input(tmp_path / "bad.parquet", MAX_CHARS)
