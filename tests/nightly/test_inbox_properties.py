"""Property tests of the inbox reader (issue 18): random bytes and random JSON, deep, huge and
surrogate values. The whole file is processed; every non-blank line is an article or a reject with
a known reason; and everything read can be written to Parquet."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from healthner.nightly.day import SHARD_SCHEMA, rejects_table
from healthner.nightly.inbox import REASONS, UTF8_BOM, read_inbox_lines

MAX_CHARS = 300
HUGE = "<huge number>"  # a marker, swapped for 5,000 digits once the line is dumped
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
any_char = st.one_of(st.characters(), surrogates, st.sampled_from("\x00\x01\r\n\u200b\u0301\ufeff😷𠀋 　"))
texts = st.text(any_char, max_size=40)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts,
    st.just(HUGE),  # becomes a number with more digits than Python will parse back
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
                           max_leaves=12)
ids = st.one_of(
    st.integers(), texts, st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.integers(), max_size=2)
)


@st.composite
def records(draw) -> bytes:
    """One line: a record of the inbox's shape with hostile values, random JSON, deep nesting or raw bytes."""
    kind = draw(st.sampled_from(["record", "json", "deep", "bytes"]))
    if kind == "record":
        record = {"article_id": draw(ids), "text": draw(texts | json_values)}
        for key in draw(st.lists(st.sampled_from(["title", "source", "url", "published_at", "extra"]), max_size=3)):
            record[key] = draw(json_values)
        value = record
    elif kind == "json":
        value = draw(json_values)
    elif kind == "deep":
        depth = draw(st.sampled_from([2, 500, 100_000]))
        return b"[" * depth + b"]" * depth
    else:
        return draw(st.binary(max_size=60))
    dumped = json.dumps(value, ensure_ascii=draw(st.booleans())).replace(json.dumps(HUGE), "9" * 5000)
    return dumped.encode("utf-8", "surrogatepass")  # a raw surrogate becomes bytes UTF-8 does not allow


@st.composite
def files(draw) -> tuple[bytes, int]:
    """A file's bytes and its number of non-blank lines; LF, CRLF or CR-only, sometimes a BOM."""
    lines = [line for line in draw(st.lists(records(), max_size=8))]
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]  # one record per line
    raw = newline.join(lines) + draw(st.sampled_from([b"", newline]))
    bom = UTF8_BOM if draw(st.booleans()) else b""
    if lines and not bom:  # the file's first bytes: a BOM there is the encoding's signature, not content
        lines[0] = lines[0].removeprefix(UTF8_BOM)
    return bom + raw, sum(bool(line.strip()) for line in lines)


def storable(table: pa.Table) -> None:
    pq.write_table(table, io.BytesIO())


@PROPERTY
@given(files())
@example((UTF8_BOM, 0))  # a file of one BOM: nothing to read
def test_every_line_is_an_article_or_a_reject_and_all_of_it_is_storable(file: tuple[bytes, int]) -> None:
    raw, non_blank = file
    read = read_inbox_lines(raw, "day.jsonl", MAX_CHARS)
    assert read.lines_read == non_blank == len(read.articles) + len(read.rejects)
    assert all(r.reason in REASONS and r.location.startswith("day.jsonl:") for r in read.rejects)
    assert len({a.article_id for a in read.articles}) == len(read.articles)
    assert all(a.article_id == a.article_id.strip() and a.text.strip() and len(a.text) <= MAX_CHARS for a in read.articles)
    storable(rejects_table(read.rejects))
    storable(pa.Table.from_pylist([a.row() for a in read.articles], schema=SHARD_SCHEMA))


@PROPERTY
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(raw: bytes) -> None:
    read = read_inbox_lines(raw, "noise.jsonl", MAX_CHARS)
    assert read.lines_read == len(read.articles) + len(read.rejects)
    storable(rejects_table(read.rejects))
