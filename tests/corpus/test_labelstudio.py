"""Label Studio JSON exports as corpus files: what is read (annotations, never predictions), what is
skipped and counted, what is a hard defect, each at its file and line; and real sentences round-trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from healthner.config import Params
from healthner.corpus.labels import Span, repair_bio, spans
from healthner.corpus.labelstudio import read_labelstudio_json
from healthner.corpus.readers import ReadResult, read_conll
from healthner.corpus.validate import ValidationFailed, validate
from tests.labelstudio_export import annotation, region, task, write_export

REPO = Path(__file__).resolve().parents[2]
TEXT = "頭痛吃阿斯匹靈"  # 頭痛 SYMP [0, 2), 阿斯匹靈 DRUG [3, 7)
GOLD = [Span("SYMP", 0, 2), Span("DRUG", 3, 7)]
KNOWN = "BODY SYMP INST EXAM CHEM DISE DRUG SUPP TREAT TIME"
GOLD_TAGS = ["B-SYMP", "I-SYMP", "O", "B-DRUG", "I-DRUG", "I-DRUG", "I-DRUG"]


def found(result: ReadResult) -> list[tuple[int, str, str]]:
    return [(d.line, d.check, d.severity) for d in result.defects]


def read(tmp_path: Path, tasks: list[Any]) -> ReadResult:
    return read_labelstudio_json(write_export(tmp_path / "fixes.json", tasks), "FT")


def reviewed(task_id: int, text: str = TEXT, gold: list[Span] = GOLD, **fields: Any) -> dict[str, Any]:
    return task(task_id, text, [annotation(text, gold, task_id, **fields)], predicted=gold[:1])


def task_lines(path: Path) -> list[int]:
    """The line each top-level task starts on, in an export written by write_export (indent 2)."""
    return [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if line == "  {"]


def test_an_annotation_becomes_character_bio_tags_at_the_tasks_line(tmp_path: Path) -> None:
    path = write_export(tmp_path / "fixes.json", [reviewed(7), reviewed(9, "吃飯", [])])
    result = read_labelstudio_json(path, "SM")
    assert result.defects == [] and result.sentences_seen == 2
    assert [(s.sent_id, s.source, s.genre, s.line, s.text, s.tags) for s in result.sentences] == [
        ("fixes:7", "fixes.json", "SM", task_lines(path)[0], TEXT, GOLD_TAGS),
        ("fixes:9", "fixes.json", "SM", task_lines(path)[1], "吃飯", ["O", "O"]),
    ]


def test_predictions_are_never_read_and_the_ground_truth_annotation_wins(tmp_path: Path) -> None:
    wrong = [Span("DISE", 0, 2)]
    chosen = task(1, TEXT, [annotation(TEXT, GOLD, 1, ground_truth=True), annotation(TEXT, wrong, 1)], predicted=wrong)
    latest = task(2, TEXT, [annotation(TEXT, wrong, 2), annotation(TEXT, GOLD, 2)], predicted=wrong)
    only_predicted = task(3, TEXT, None, predicted=GOLD)
    result = read(tmp_path, [chosen, latest, only_predicted])
    assert [s.tags for s in result.sentences] == [GOLD_TAGS, GOLD_TAGS]
    assert [(d.check, d.severity) for d in result.defects] == [
        ("several_annotations", "warning"), ("several_annotations", "warning"), ("unreviewed_task", "rejected"),
    ]
    assert "the ground-truth one is read" in result.defects[0].message and "the last one" in result.defects[1].message


def test_unreviewed_cancelled_and_empty_tasks_are_skipped_and_counted(tmp_path: Path) -> None:
    cancelled = task(2, TEXT, [annotation(TEXT, GOLD, 2, was_cancelled=True)])
    half = task(3, TEXT, [annotation(TEXT, [], 3, was_cancelled=True), annotation(TEXT, GOLD, 3)])
    result = read(tmp_path, [task(1, TEXT, None), cancelled, half, task(4, "", None)])
    assert [d.check for d in result.defects] == ["unreviewed_task", "cancelled_task", "empty_sentence"]
    assert {d.severity for d in result.defects} == {"rejected"}
    assert result.sentences_seen == 4 and [s.sent_id for s in result.sentences] == ["fixes:3"]
    assert result.defects[0].message == "task 1 (id 1): no annotation (not reviewed; predictions are never read as labels)"


def test_other_region_types_are_ignored_with_a_warning(tmp_path: Path) -> None:
    fix = reviewed(1)
    fix["annotations"][0]["result"].append(
        {"id": "c1", "from_name": "quality", "to_name": "text", "type": "choices", "value": {"choices": ["ok"]}}
    )
    result = read(tmp_path, [fix])
    assert result.sentences[0].tags == GOLD_TAGS
    assert [(d.check, d.severity) for d in result.defects] == [("ignored_region", "warning")]


def _edit_value(**changes: Any):
    def edit(fix: dict[str, Any]) -> None:
        fix["annotations"][0]["result"][1]["value"].update(changes)

    return edit


def _add_region(span: Span):
    def edit(fix: dict[str, Any]) -> None:
        fix["annotations"][0]["result"].append(region(span, TEXT, 9))

    return edit


def _set(path: tuple[str, ...], value: Any):
    def edit(fix: dict[str, Any]) -> None:
        target = fix
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "check", "says"),
    [
        (_edit_value(end=8), "span_outside_text", "span [3, 8) is empty or outside the text (0 to 7 characters)"),
        (_edit_value(start=5, end=5), "span_outside_text", "span [5, 5) is empty"),
        (_edit_value(start=-1), "span_outside_text", "span [-1, 7)"),
        (_edit_value(start=4), "span_text_mismatch", "value.text '阿斯匹靈' is not text[4:7] '斯匹靈'"),
        (_edit_value(start="3"), "field_type", "'start' and 'end' must be integers"),
        (_edit_value(labels=["Drug"]), "unknown_label", "unknown label 'Drug' (known: BODY SYMP"),
        (_edit_value(labels=["DRUG", "CHEM"]), "label_count", "a span needs exactly one label"),
        (_edit_value(labels=[]), "label_count", "a span needs exactly one label"),
        (_add_region(Span("BODY", 0, 1)), "overlapping_spans", "spans BODY [0, 1) and SYMP [0, 2) share characters"),
        (_add_region(Span("DRUG", 3, 7)), "overlapping_spans", "spans DRUG [3, 7) and DRUG [3, 7) share characters"),
        (_set(("data",), {"article": TEXT}), "field_count", "no data.text string"),
        (_set(("data", "text"), "頭痛\ud800"), "invalid_text", "lone surrogate U+D800"),
        (_set(("annotations",), {"result": []}), "field_type", "'annotations' must be a list of objects"),
        (_set(("annotations", 0, "result"), "none"), "field_type", "'result' must be a list of objects"),
    ],
)
def test_a_wrong_label_is_a_hard_defect_at_the_tasks_line(tmp_path: Path, edit, check: str, says: str) -> None:
    bad = reviewed(8)
    edit(bad)
    path = write_export(tmp_path / "fixes.json", [reviewed(7), bad])
    result = read_labelstudio_json(path, "FT")
    assert found(result) == [(task_lines(path)[1], check, "error")]
    assert says in result.defects[0].message and result.defects[0].message.startswith("task 2 (id 8): ")
    assert result.sentences_seen == 2 and [s.sent_id for s in result.sentences] == ["fixes:7"]


@pytest.mark.parametrize(
    ("content", "line", "check"),
    [
        ('{"id": 1}', 1, "json_invalid"),  # an object, not the export's array
        ("[]", 1, "file_empty"),
        ("", 0, "file_empty"),
        ('[\n  {"id": 1, "data": {"text": "吃"}, "annotations": [{"result": []}]},\n  {"id": 2,,}\n]', 3, "json_invalid"),
        ('[\n  {"id": 1, "data": {"text": "吃"}, "annotations": [{"result": []}]}\n  {"id": 2}\n]', 3, "json_invalid"),
        ('[{"id": 1, "data": {"text": "吃"}, "annotations": [{"result": []}]}]\n\nmore', 3, "json_invalid"),
    ],
)
def test_a_broken_file_is_one_defect_at_its_line(tmp_path: Path, content: str, line: int, check: str) -> None:
    path = tmp_path / "fixes.json"
    path.write_text(content, encoding="utf-8")
    result = read_labelstudio_json(path, "FT")
    assert found(result) == [(line, check, "error")]
    assert len(result.sentences) == result.sentences_seen == (1 if "吃" in content else 0)


def test_bad_utf8_is_a_defect_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fixes.json"
    path.write_bytes(b'[\n  {"id": 1, "data": {"text": "\xff"}}\n]')
    assert found(read_labelstudio_json(path, "FT")) == [(2, "invalid_utf8", "error")]


# --- real sentences, and the validate stage -----------------------------------------------------------


def real_tasks(params: Params, count: int) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Tasks whose reviewed annotation is a real corpus sentence's entities (BIO repaired as validate does)."""
    sentences = read_conll(params.data.corpus_dir / "rocling2023_multiner_SM.txt", "SM").sentences[:count]
    tags = [repair_bio(s.tags)[0] for s in sentences]
    return [reviewed(i + 1, s.text, spans(t)) for i, (s, t) in enumerate(zip(sentences, tags))], tags


def test_real_sentences_round_trip_through_an_export(base_params: Params, tmp_path: Path) -> None:
    tasks, tags = real_tasks(base_params, 200)
    result = read(tmp_path, tasks)
    assert result.defects == [] and [s.tags for s in result.sentences] == tags
    assert sum(len(spans(t)) for t in tags) > 200  # the slice is rich in entities


def test_validate_reads_an_export_and_reconciles_its_counts(base_params: Params, tmp_path: Path) -> None:
    tasks, _ = real_tasks(base_params, 40)
    tasks += [task(900, "沒有人看過", None), task(901, "取消了", [annotation("取消了", [], 901, was_cancelled=True)])]
    write_export(tmp_path / "fixes.json", tasks)
    params = base_params.with_updates(
        data={"corpus_dir": tmp_path, "files": [{"name": "fixes.json", "format": "labelstudio_json", "genre": "SM"}]},
        split={"test_sources": []},
    )
    report = validate(params, corpus_dir=tmp_path)
    stats = report.files["fixes.json"]
    assert (stats.sentences_in, stats.sentences_out, stats.sentences_rejected, stats.sentences_failed) == (42, 40, 2, 0)
    assert report.checks["unreviewed_task"]["count"] == report.checks["cancelled_task"]["count"] == 1
    tasks[3]["annotations"][0]["result"][0]["value"]["labels"] = ["MEDICINE"]
    path = write_export(tmp_path / "fixes.json", tasks)
    with pytest.raises(ValidationFailed) as failure:
        validate(params, corpus_dir=tmp_path)
    assert [str(d) for d in failure.value.defects] == [
        f"{path}:{task_lines(path)[3]}: task 4 (id 4): region 1 (id r0): unknown label 'MEDICINE' (known: {KNOWN})"
    ]
    assert json.loads(json.dumps(failure.value.report.as_dict()))["totals"]["sentences_failed"] == 1
