"""Each `healthner tag --format` read back by its own reader: pyarrow, json, a CoNLL reader
(seqeval's BIO decoding), an HTML parser checking every entity's span, and Label Studio's documented
task shape. The Parquet output of the same run is the reference every other format must match."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from seqeval.metrics.sequence_labeling import get_entities
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.labels import ENTITY_TYPES
from healthner.nightly.tag_files import EntityFilter, tag_files
from healthner.nightly.tagger import Tagger

REPO = Path(__file__).resolve().parents[2]
ARTICLES = {
    "a1": "今天頭痛又發燒，醫生開了普拿疼。\n晚上咳嗽，喉嚨痛。",
    "a2": "糖尿病患者要控制血糖；每天量血壓。",
    "a<3>&": "膽結石 會 引起 腹痛！\r\n\n吃維生素C。",
    "a4": "血壓高",
}

Spans = set[tuple[str, str, int, int]]


@pytest.fixture(scope="module")
def tagger(random_ensemble: Path) -> Tagger:
    return Tagger.load(random_ensemble)


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO / "params.yaml").with_updates(nightly={"chunk_articles": 2})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "articles.jsonl"
    path.write_text("".join(json.dumps({"article_id": k, "text": t}, ensure_ascii=False) + "\n"
                            for k, t in ARTICLES.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(params: Params, random_ensemble: Path, source: Path, tagger: Tagger,
              tmp_path_factory: pytest.TempPathFactory) -> Spans:
    out = tmp_path_factory.mktemp("ref") / "entities.parquet"
    summary = tag_files(params, random_ensemble, source, out, tagger=tagger)
    rows = pq.read_table(out).to_pylist()
    assert summary.entities == len(rows) > 0 and summary.tagged == len(ARTICLES)
    for row in rows:
        assert ARTICLES[row["article_id"]][row["start"] : row["end"]] == row["text"]
        assert row["model_version"] == tagger.model_version
    return {(r["article_id"], r["type"], r["start"], r["end"]) for r in rows}


def _tag(params: Params, model: Path, source: Path, out: Path, fmt: str, tagger: Tagger) -> None:
    summary = tag_files(params, model, source, out, fmt, tagger=tagger)
    assert summary.tagged == len(ARTICLES) and summary.rejected == 0


def test_jsonl_rows_are_the_parquet_rows(params, random_ensemble, source, tagger, reference, tmp_path) -> None:
    out = tmp_path / "entities.jsonl"
    _tag(params, random_ensemble, source, out, "jsonl", tagger)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {(r["article_id"], r["type"], r["start"], r["end"]) for r in rows} == reference
    assert all(ARTICLES[r["article_id"]][r["start"] : r["end"]] == r["text"] for r in rows)


def read_conll_blocks(path: Path) -> dict[str, list[list[tuple[str, str]]]]:
    """article_id -> its blocks of (char, tag); `# article_id = ` opens an article."""
    articles: dict[str, list[list[tuple[str, str]]]] = {}
    current, block = None, []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("# article_id = "):
            current = line.removeprefix("# article_id = ")
            articles[current] = []
        elif line == "":
            if block:
                articles[current].append(block)
            block = []
        else:
            char, _, tag = line.rpartition(" ")
            block.append((char, tag))
    return articles


def test_conll_reads_back_to_the_same_spans(params, random_ensemble, source, tagger, reference, tmp_path) -> None:
    out = tmp_path / "entities.conll"
    _tag(params, random_ensemble, source, out, "conll", tagger)
    spans: Spans = set()
    for article_id, blocks in read_conll_blocks(out).items():
        lines = [line.replace("\r", "") for line in ARTICLES[article_id].split("\n")]
        starts = [sum(len(x) + 1 for x in ARTICLES[article_id].split("\n")[:i]) for i in range(len(lines))]
        kept = [(line, start) for line, start in zip(lines, starts, strict=True) if line.strip()]
        assert ["".join(c for c, _ in block) for block in blocks] == [line for line, _ in kept]
        for block, (_, start) in zip(blocks, kept, strict=True):
            for etype, first, last in get_entities([tag for _, tag in block]):
                spans.add((article_id, etype, start + first, start + last + 1))
    assert spans == reference


class MarkedText(HTMLParser):
    """Each article's text as shown (labels left out) and its marked entities with their offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}
        self.marks: list[tuple[str, str, int, int, float, str]] = []  # article, type, start, end, score, shown
        self.article = self.mark = None
        self.in_text = self.in_label = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "article":
            self.article = a["data-article-id"]
            self.texts[self.article] = ""
        elif tag == "div" and a.get("class") == "text":
            self.in_text = True
        elif tag == "mark" and self.in_text:
            assert a["title"].startswith(a["data-type"]) and a["class"] == f"entity entity-{a['data-type']}"
            self.mark = [a["data-type"], int(a["data-start"]), int(a["data-end"]), float(a["data-score"]),
                         len(self.texts[self.article])]
        elif tag == "span" and self.mark is not None:
            self.in_label = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self.in_text = False
        elif tag == "span":
            self.in_label = False
        elif tag == "mark" and self.mark is not None:
            etype, start, end, score, at = self.mark
            assert at == start  # the mark sits at its offset in the text as shown
            self.marks.append((self.article, etype, start, end, score, self.texts[self.article][at:]))
            self.mark = None

    def handle_data(self, data: str) -> None:
        if self.in_text and not self.in_label:
            self.texts[self.article] += data


def test_html_marks_every_entity_at_its_span(params, random_ensemble, source, tagger, reference, tmp_path) -> None:
    out = tmp_path / "entities.html"
    _tag(params, random_ensemble, source, out, "html", tagger)
    page = MarkedText()
    page.feed(out.read_bytes().decode("utf-8"))  # read_text would turn CR LF into LF
    page.close()
    assert page.texts == ARTICLES  # the whole text, escaped and unescaped back exactly
    assert {(a, t, s, e) for a, t, s, e, _, _ in page.marks} == reference
    for article_id, _, start, end, score, shown in page.marks:
        assert shown == ARTICLES[article_id][start:end] and 0.0 <= score <= 1.0
    assert all(f"mark.entity-{t}" in out.read_text(encoding="utf-8") for t in ENTITY_TYPES)  # a colour per type


def test_labelstudio_tasks_have_the_documented_shape(params, random_ensemble, source, tagger, reference, tmp_path) -> None:
    out = tmp_path / "tasks.json"
    _tag(params, random_ensemble, source, out, "labelstudio", tagger)
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(tasks, list) and [t["data"]["article_id"] for t in tasks] == list(ARTICLES)
    spans: Spans = set()
    for task in tasks:
        text = task["data"]["text"]
        assert text == ARTICLES[task["data"]["article_id"]]
        [prediction] = task["predictions"]
        assert prediction["model_version"] == tagger.model_version
        for result in prediction["result"]:
            assert {result["from_name"], result["to_name"], result["type"]} == {"label", "text", "labels"}
            value = result["value"]
            assert text[value["start"] : value["end"]] == value["text"] and 0.0 <= result["score"] <= 1.0
            [label] = value["labels"]
            spans.add((task["data"]["article_id"], label, value["start"], value["end"]))
        if prediction["result"]:
            mean = sum(r["score"] for r in prediction["result"]) / len(prediction["result"])
            assert prediction["score"] == pytest.approx(mean)
    assert spans == reference


def test_filters_keep_only_the_asked_types_and_scores(params, random_ensemble, source, tagger, tmp_path) -> None:
    out = tmp_path / "all.parquet"
    tag_files(params, random_ensemble, source, out, tagger=tagger)
    everything = pq.read_table(out).to_pylist()
    kind = everything[0]["type"]
    cut = sorted(r["score"] for r in everything)[len(everything) // 2]
    out = tmp_path / "some.parquet"
    summary = tag_files(params, random_ensemble, source, out, keep=EntityFilter.of(cut, [kind.lower()]), tagger=tagger)
    kept = pq.read_table(out).to_pylist()
    expected = [r for r in everything if r["type"] == kind and r["score"] >= cut]
    assert kept == expected and summary.entities == len(kept) and summary.left_out == len(everything) - len(kept)


def test_cli_refuses_an_unknown_type_or_format(tmp_path: Path, source: Path) -> None:
    out = str(tmp_path / "x.parquet")
    for extra, message in ((["--types", "DRUG,PIZZA"], "unknown type(s) PIZZA"), (["--format", "xml"], "--format xml")):
        result = CliRunner().invoke(app, ["tag", "--input", str(source), "--output", out, *extra,
                                          "--params", str(REPO / "params.yaml")])
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.splitlines()) == 1
