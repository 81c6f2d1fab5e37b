"""Property test of the whole tag path (issue 17): random Unicode through `tag_files` with a real
(tiny, random-weight) ensemble. No crash; every line tagged or rejected with a known reason; counts
reconcile; every entity's text is article[start:end] and has clean edges."""

from __future__ import annotations

import json
import tempfile
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthner.config import load_params
from healthner.nightly.inbox import REASONS, UTF8_BOM
from healthner.nightly.inputs import read_input
from healthner.nightly.tag_files import rejects_path, tag_files
from healthner.nightly.tagger import EDGE_CATEGORIES, Tagger

REPO = Path(__file__).resolve().parents[2]
MAX_CHARS = 20_000  # a 200k-character text is over it (a reject); tagging stays quick

astral = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
surrogates = st.integers(0xD800, 0xDFFF).map(chr)  # written as "\udXXX" escapes by json.dumps
special = st.sampled_from(["\x00", "\x07", "\r", "\n", "\t", "\u200b", "\u200d", "\u0301", "\ufeff", "😷", "。", "　"])
chinese = st.sampled_from("頭痛發燒咳嗽醫生病人糖尿病膽結石維生素")
chars = st.one_of(chinese, chinese, st.characters(), astral, special, surrogates)
short_texts = st.text(chars, max_size=200)
long_texts = st.builds(lambda unit, n: (unit * (n // max(len(unit), 1) + 1))[:n], st.text(chars, min_size=1, max_size=20),
                       st.sampled_from([0, 2_000, 200_000]))
ids = st.one_of(st.integers(-5, 5), st.text(max_size=6), st.floats(allow_nan=False), st.booleans(), st.none(),
                st.lists(st.integers(), max_size=2), st.just(" 1 "), st.just("1"))


@st.composite
def inbox_files(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        record = {"article_id": draw(ids), "text": draw(st.one_of(short_texts, short_texts, long_texts))}
        if draw(st.booleans()):
            record["title"] = draw(short_texts)
        lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass"))
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    return (UTF8_BOM if draw(st.booleans()) else b"") + newline.join(lines) + newline


@pytest.fixture(scope="module")
def tagger(random_ensemble: Path) -> Tagger:
    return Tagger.load(random_ensemble)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=inbox_files())
def test_tag_path_on_random_unicode(raw: bytes, tagger: Tagger, random_ensemble: Path) -> None:
    params = load_params(REPO / "params.yaml").with_updates(nightly={"max_article_chars": MAX_CHARS, "chunk_articles": 3})
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "in.jsonl", Path(folder) / "entities.parquet"
        source.write_bytes(raw)
        summary = tag_files(params, random_ensemble, source, output, tagger=tagger)
        entities = pq.read_table(output).to_pylist()
        rejects = pq.read_table(rejects_path(output)).to_pylist()
        read = read_input(source, MAX_CHARS)
    non_blank = sum(bool(line.strip()) for line in raw.removeprefix(UTF8_BOM).split(b"\n"))
    assert summary.read == non_blank == summary.tagged + summary.rejected
    assert summary.rejected == len(rejects) and summary.entities == len(entities)
    assert all(r["reason"] in REASONS and r["location"].startswith("in.jsonl:") for r in rejects)
    texts = {a.article_id: a.text for a in read.articles}
    assert len(texts) == summary.tagged
    for entity in entities:
        article = texts[entity["article_id"]]
        assert 0 <= entity["start"] < entity["end"] <= len(article)
        assert article[entity["start"] : entity["end"]] == entity["text"]
        for edge in (entity["text"][0], entity["text"][-1]):
            assert not edge.isspace() and not unicodedata.category(edge).startswith(EDGE_CATEGORIES)
