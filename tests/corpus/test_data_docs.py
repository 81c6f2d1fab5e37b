"""The examples a stranger copies from the README and docs/data.md are read by the real readers without a defect."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from healthner.corpus.labelstudio import read_labelstudio_json
from healthner.corpus.readers import read_conll, read_healthner_jsonl
from healthner.sections.corpus import CorpusFile

REPO = Path(__file__).resolve().parents[2]
README, DATA_DOC = REPO / "README.md", REPO / "docs" / "data.md"


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of `language` in a Markdown file."""
    return re.findall(rf"^```{language}\n(.*?)^```$", path.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)


def test_the_json_lines_examples_are_valid_records(tmp_path: Path) -> None:
    lines = [b for path in (README, DATA_DOC) for b in blocks(path, "json") if b.startswith("{")]
    assert len(lines) == 2 and lines[0] == lines[1]
    path = tmp_path / "mine.jsonl"
    path.write_text(lines[0], encoding="utf-8")
    result = read_healthner_jsonl(path)
    assert result.defects == [] and result.sentences[0].tags == ["B-SYMP", "I-SYMP", "O", "B-DRUG", "I-DRUG", "I-DRUG"]


def test_the_conll_example_reads_without_a_defect(tmp_path: Path) -> None:
    (example,) = [b for b in blocks(DATA_DOC, "") if b.startswith("頭 ")]
    path = tmp_path / "my_ward.txt"
    path.write_text(example, encoding="utf-8")
    result = read_conll(path, "SM")
    assert result.defects == [] and [s.text for s in result.sentences] == ["頭痛吃普拿疼", "第"]


def test_the_label_studio_example_reads_without_a_defect(tmp_path: Path) -> None:
    (example,) = [b for b in blocks(DATA_DOC, "json") if b.startswith("[")]
    path = tmp_path / "fixes.json"
    path.write_text(example, encoding="utf-8")
    result = read_labelstudio_json(path, "FT")
    assert result.defects == [] and result.sentences[0].tags == ["B-SYMP", "I-SYMP", "O", "O", "O", "O"]


def test_the_data_files_examples_are_valid_entries() -> None:
    (example,) = blocks(DATA_DOC, "yaml")
    entries = [CorpusFile(**entry) for entry in yaml.safe_load(example)["data"]["files"]]
    assert [e.genre for e in entries] == ["SM", None, "FT"]
    readme = re.findall(r"`(\{name: [^`]*\})`", " ".join(README.read_text(encoding="utf-8").split()))
    assert len(readme) == 3 and [CorpusFile(**yaml.safe_load(e)).format for e in readme] == [
        "conll", "labelstudio_json", "healthner_jsonl",
    ]
