"""`healthner tag --input`: a file, a folder, a glob or `-` (stdin); JSON lines, Parquet and `.txt`
articles (the file name's stem is the id). Every record is tagged or rejected, counts reconcile,
and the output is written as the chunks are tagged (one Parquet row group per chunk)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.errors import InputFormatError
from healthner.nightly.inbox import DUPLICATE_ID, INVALID_UTF8, NOT_JSONL
from healthner.nightly.inputs import input_files, read_input
from healthner.nightly.tag_files import rejects_path, tag_files
from healthner.nightly.tagger import Tagger

REPO = Path(__file__).resolve().parents[2]
MAX_CHARS = 1000


@pytest.fixture(scope="module")
def tagger(random_ensemble: Path) -> Tagger:
    return Tagger.load(random_ensemble)


@pytest.fixture
def params() -> Params:
    return load_params(REPO / "params.yaml").with_updates(nightly={"chunk_articles": 2}, tag={"workers": 1})


def jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def a_folder(root: Path) -> Path:
    """Two JSON-lines articles, two Parquet rows, two .txt articles (one not UTF-8) and a CSV."""
    folder = root / "in"
    jsonl(folder / "news.jsonl", [{"article_id": "n1", "text": "頭痛發燒。"}, {"article_id": "n2", "text": "咳嗽"}])
    pq.write_table(pa.table({"article_id": ["p1", "n1"], "text": ["胃痛三天", "重複的"], "title": ["胃", None]}),
                   folder / "more.parquet")
    (folder / "sub").mkdir()
    (folder / "sub" / "t1.txt").write_text("糖尿病患者要控制血糖。\n每天量血壓。", encoding="utf-8")
    (folder / "sub" / "t2.txt").write_bytes(b"\xff\xfe bad")
    (folder / "notes.csv").write_text("a,b\n", encoding="utf-8")
    return folder


def test_a_folder_reads_every_kind_and_counts_the_rest(tmp_path: Path) -> None:
    read = read_input(a_folder(tmp_path), MAX_CHARS)
    assert [a.article_id for a in read.articles] == ["p1", "n1", "n2", "t1"]
    assert [a.location for a in read.articles] == ["more.parquet:1", "more.parquet:2", "news.jsonl:2", "sub/t1.txt:1"]
    assert read.articles[-1].text == "糖尿病患者要控制血糖。\n每天量血壓。" and read.articles[0].title == "胃"
    assert [(r.location, r.reason) for r in read.rejects] == [  # files in name order: the Parquet n1 came first
        ("news.jsonl:1", DUPLICATE_ID), ("notes.csv:0", NOT_JSONL), ("sub/t2.txt:1", INVALID_UTF8)]
    assert read.lines_read == len(read.articles) + len(read.rejects) == 7


def test_a_glob_reads_the_files_it_matches(tmp_path: Path) -> None:
    folder = a_folder(tmp_path)
    read = read_input(str(folder / "**" / "*.txt"), MAX_CHARS)
    assert [a.article_id for a in read.articles] == ["t1"] and [r.reason for r in read.rejects] == [INVALID_UTF8]
    with pytest.raises(InputFormatError, match=r"no file matches this pattern"):
        input_files(str(folder / "*.xml"))
    with pytest.raises(InputFormatError, match=r"input file not found"):
        input_files(folder / "missing.jsonl")


def test_tagging_a_folder_reconciles_and_writes_a_row_group_per_chunk(
    params: Params, random_ensemble: Path, tagger: Tagger, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "entities.parquet"
    summary = tag_files(params, random_ensemble, a_folder(tmp_path), out, tagger=tagger)
    assert (summary.read, summary.tagged, summary.rejected) == (7, 4, 3)
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # 4 articles, chunk_articles 2: written as tagged
    assert pq.read_table(rejects_path(out)).num_rows == 3
    assert set(pq.read_table(out).column("article_id").to_pylist()) <= {"p1", "n1", "n2", "t1"}


def test_stdin_is_json_lines(params: Params, random_ensemble: Path, tmp_path: Path) -> None:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    lines = "".join(json.dumps({"article_id": i, "text": t}, ensure_ascii=False) + "\n"
                    for i, t in enumerate(["頭痛", "咳嗽發燒", "頭痛"]))
    out = tmp_path / "entities.jsonl"
    result = CliRunner().invoke(app, ["tag", "--input", "-", "--output", str(out), "--model", str(random_ensemble),
                                      "--params", str(params_file)], input=lines + "{oops\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("read 4: tagged 3, rejected 1;")
    assert pq.read_table(rejects_path(out)).column("location").to_pylist() == ["<stdin>:4"]
    assert all(json.loads(line)["article_id"] in {"0", "1", "2"} for line in out.read_text(encoding="utf-8").splitlines())
