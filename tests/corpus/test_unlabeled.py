"""The `unlabeled` stage: GB18030 decoding, OpenCC, sentence cuts, dedup and the dev/test leak filter."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from healthner.config import load_params
from healthner.corpus.readers import Sentence, read_conll, write_sentences
from healthner.corpus.unlabeled import build_unlabeled, decode, qa_blocks, qa_rows, records
from healthner.errors import HealthnerError
from healthner.nightly.batch import sample_articles

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
SHARED_UNLABELED = (REPO / PARAMS.data.unlabeled_dir).resolve()


def _sentence(text: str, split: str, n: int) -> Sentence:
    return Sentence(f"{split}-{n}", f"{split}.txt", "FT", n, list(text), ["O"] * len(text))


def _params(tmp_path: Path, files: list[str], dev: list[str], test: list[str]):
    prepared = tmp_path / "prepared"
    write_sentences([_sentence(t, "dev", i) for i, t in enumerate(dev)], prepared / "dev.parquet")
    write_sentences([_sentence(t, "test", i) for i, t in enumerate(test)], prepared / "test.parquet")
    return PARAMS.with_updates(
        data={"unlabeled_dir": str(tmp_path / "raw"), "unlabeled_files": [{"name": name} for name in files]},
        prepare={"output_dir": str(prepared)},
        unlabeled={"output": str(tmp_path / "out" / "sentences.parquet"), "report": str(tmp_path / "unlabeled.json")},
    )


def _write_gb18030(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("gb18030"))


def test_the_real_files_decode_and_an_undecodable_byte_is_counted_and_dropped() -> None:
    raw = (SHARED_UNLABELED / "medical_dialogue_IM.txt").read_bytes()[:4000]
    raw = raw[: raw.rindex(b"\n") + 1]  # whole lines: no multi-byte character cut in two
    clean, bad = decode(raw)
    assert bad == 0 and "高血压" in clean
    damaged, bad = decode(raw[:10] + b"\xff" + raw[10:])
    assert bad == 1 and damaged == clean


def test_the_real_csv_parses_with_answers_spanning_lines() -> None:
    found, bad = records(SHARED_UNLABELED / "medical_dialogue_IM_5000-6000.csv")
    rows = list(found)
    assert bad == 0 and len(rows) == 7644  # the source's README: 7,644 rows
    assert all(len(texts) == 3 for _, texts in rows)


def test_opencc_converts_to_taiwan_usage(tmp_path: Path) -> None:
    _write_gb18030(tmp_path / "raw" / "a.csv", "department,title,ask,answer\n内科,扑热息痛能退烧吗？,高血压患者的软件。,\n")
    params = _params(tmp_path, ["a.csv"], dev=[], test=[])
    build_unlabeled(params)
    texts = pq.read_table(params.unlabeled.output)["text"].to_pylist()
    assert texts == ["對乙醯胺基酚能退燒嗎？", "高血壓患者的軟體。"]


def test_qa_blocks_cut_the_title_line_at_commas_and_keep_the_answer() -> None:
    text = "頭痛,發燒怎麼辦,要看醫生嗎\n多喝水。\n\n\n胃痛,吃什麼\n吃藥。\n"
    assert list(qa_blocks(text)) == [
        (1, ["頭痛", "發燒怎麼辦", "要看醫生嗎", "多喝水。"]), (5, ["胃痛", "吃什麼", "吃藥。"])
    ]


def test_a_csv_without_the_expected_header_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(HealthnerError, match=r"bad\.csv:1: the header lacks"):
        list(qa_rows("a,b\n1,2\n", tmp_path / "bad.csv"))


def test_duplicates_and_held_out_sentences_are_dropped_and_the_counts_reconcile(tmp_path: Path) -> None:
    _write_gb18030(tmp_path / "raw" / "a.txt", "头痛,我头痛三天了。\n请多休息。医生说要吃药。\n\n")
    _write_gb18030(tmp_path / "raw" / "b.csv", "department,title,ask,answer\n内科,头痛,我头痛三天了。,好\n")
    params = _params(tmp_path, ["a.txt", "b.csv"], dev=["請多休息。"], test=["今天天氣很好。醫生說要吃藥。"])
    report = build_unlabeled(params)
    assert pq.read_table(params.unlabeled.output)["text"].to_pylist() == ["我頭痛三天了。"]
    assert report.dropped == {"too_short": 3, "in_dev": 1, "in_test": 1, "duplicate": 1}
    saved = json.loads(params.unlabeled.report.read_text(encoding="utf-8"))
    for counts in saved["sources"].values():
        assert counts["sentences"] == counts["kept"] + sum(counts["dropped"].values())


def test_a_missing_source_file_is_named(tmp_path: Path) -> None:
    params = _params(tmp_path, ["gone.txt"], dev=[], test=[])
    with pytest.raises(FileNotFoundError, match=r"gone\.txt: unlabeled file not found"):
        build_unlabeled(params)


def test_the_sample_night_built_from_test_is_removed_by_the_leak_filter(tmp_path: Path) -> None:
    """The nightly sample inbox comes from the test split: fed back as unlabeled text, none of it survives."""
    wa = read_conll(REPO / PARAMS.data.corpus_dir / "rocling2023_multiner_WA.txt", "WA").sentences[:300]
    articles = sample_articles(wa, 20, "2026-01-01")
    path = tmp_path / "raw" / "night.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="gb18030", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["department", "title", "ask", "answer"])
        writer.writerows(["night", "", a["text"], ""] for a in articles)
    params = _params(tmp_path, ["night.csv"], dev=[], test=[s.text for s in wa])
    report = build_unlabeled(params)
    assert report.kept == 0 and report.dropped.get("in_test", 0) > 0
