"""Inbox reading: every unusable line is a reject with file:line and a reason; counts reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from healthner.corpus.readers import read_conll
from healthner.nightly.batch import assign_shards, read_day, read_input, sample_articles
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
    write(day / "notes.txt", [b"ignored"])
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
