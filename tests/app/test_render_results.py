"""The README's and docs' results tables are written from reports/, between their markers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("render_results", REPO / "scripts" / "render_results.py")
render_results = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(render_results)


def _scores(f1: float) -> dict:
    per_type = {"BODY": {"precision": f1, "recall": f1, "f1": f1, "support": 3843}}
    return {"precision": f1, "recall": f1, "f1": f1, "per_type": per_type}


def _reports(folder: Path) -> Path:
    metrics = {split: {"bert": _scores(0.7), "shipped": _scores(0.75)} for split in ("dev", "test")}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"model": "BERT", "members": ["bert"], "dev_f1": 0.7, "test_f1": 0.69},
            {"model": "BERT+RoBERTa", "members": ["bert", "roberta"], "dev_f1": 0.72, "test_f1": 0.68}]
    (folder / "table2.json").write_text(json.dumps(rows))
    chosen = {"kind": "member", "members": ["bert"], "reason": "no combiner beats bert alone by 0.005 dev F1"}
    combiners = {"rows": [{"kind": "vote", "members": ["bert", "roberta"], "dev_f1": 0.69, "dev_spread": 0.001,
                           "test_f1": 0.68, "ships": False}], "selection": {"chosen": chosen}}
    (folder / "combiners.json").write_text(json.dumps(combiners))
    pairs = [{"a": "bert", "b": "roberta", "disagreement": 0.05, "error_overlap": 0.6, "missed_entity_overlap": 0.7}]
    (folder / "diversity.json").write_text(json.dumps(pairs))
    return folder


def test_tables_replace_only_what_is_between_their_markers(tmp_path: Path) -> None:
    generated = render_results.tables(_reports(tmp_path))
    text = "intro\n<!-- results:summary -->\nold table\n<!-- /results:summary -->\noutro\n"
    out = render_results.render(text, generated)
    assert out.startswith("intro\n<!-- results:summary -->\n| model | dev F1 |")
    assert out.endswith("<!-- /results:summary -->\noutro\n")
    assert "old table" not in out
    assert "| BERT-BiLSTM-CRF | 0.7000 | 0.7000 | 0.833 | 0.7768 |" in out
    assert render_results.render(out, generated) == out  # idempotent


def test_table2_marks_the_best_combination_on_dev(tmp_path: Path) -> None:
    table = render_results.tables(_reports(tmp_path))["table2"]
    assert "| BERT+RoBERTa | 0.7200 | 0.6800 | best on dev |" in table


def test_the_choice_and_the_combiners_come_from_the_stack_decision(tmp_path: Path) -> None:
    generated = render_results.tables(_reports(tmp_path))
    assert generated["choice"] == "**What ships:** member (BERT): no combiner beats bert alone by 0.005 dev F1."
    assert "| vote | BERT + RoBERTa | 0.6900 | 0.0010 | 0.6800 |  |" in generated["combiners"]
    assert "| BERT + RoBERTa | 0.0500 | 0.600 | 0.700 |" in generated["diversity"]


def test_the_crossfit_tables_set_the_profile_beside_the_default(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    default = _reports(tmp_path / "default")
    crossfit = tmp_path / "crossfit"
    crossfit.mkdir()
    rows = [
        {"kind": "vote", "members": ["bert", "roberta"], "dev_f1": 0.71, "dev_spread": 0.0, "test_f1": 0.70, "ships": True}
    ]
    chosen = {"kind": "vote", "members": ["bert", "roberta"], "reason": "vote beats bert alone by +0.0100 dev F1"}
    (crossfit / "combiners.json").write_text(json.dumps({"rows": rows, "selection": {"chosen": chosen}}))
    members = [
        {"slot": "bert", "fold": k, "dev_f1": f1, "best_epoch": 5, "seconds": 100.0} for k, f1 in enumerate((0.70, 0.72))
    ]
    record = {"folds": 2, "sentences": 10, "seconds": 200.0, "members": members, "full_dev_f1": {"bert": 0.73}}
    (crossfit / "crossfit.json").write_text(json.dumps(record))
    (crossfit / "metrics.json").write_text((default / "metrics.json").read_text())
    tables = render_results.crossfit_tables(default, crossfit)
    profiles = render_results.profiles_table(default, {"crossfit": crossfit})
    assert "| default (params.yaml) | member (BERT) | 0.7500 / 0.7500 | 0.7000 / 0.7000 |  |  |  |" in profiles
    assert "| configs/crossfit.yaml | vote (BERT + RoBERTa) | 0.7500 / 0.7500 |" in profiles
    assert tables["crossfit-choice"].startswith("**What ships:** vote (BERT + RoBERTa)")
    assert "| vote | 0.6900 | 0.7100 | 0.6800 | 0.7000 |" in tables["crossfit-combiners"]
    assert "| BERT | 0.7300 | 0.7100 (0.7000 - 0.7200) | 200 |" in tables["crossfit-members"]
    assert "| all, 2 folds | | | 200 |" in tables["crossfit-members"]


def test_a_profile_table_sets_every_model_of_the_profile_beside_the_default(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    default = _reports(tmp_path / "default")
    monpa = tmp_path / "monpa"
    monpa.mkdir()
    metrics = {split: {"bert": _scores(0.7), "albert": _scores(0.71), "shipped": _scores(0.7)} for split in ("dev", "test")}
    (monpa / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"kind": "forest", "members": ["bert", "albert"], "dev_f1": 0.69, "dev_spread": 0.0, "test_f1": 0.68,
             "ships": False},
            {"kind": "member", "members": ["albert"], "dev_f1": 0.71, "dev_spread": 0.0, "test_f1": 0.71, "ships": True}]
    chosen = {"kind": "member", "members": ["albert"], "reason": "no combiner beats albert alone"}
    (monpa / "combiners.json").write_text(json.dumps({"rows": rows, "selection": {"chosen": chosen}}))
    table = render_results.profile_table(default, monpa)
    assert "| BERT alone | 0.7000 / 0.7000 | 0.7000 / 0.7000 |" in table
    assert "| ALBERT alone |  | 0.7100 / 0.7100 |" in table  # a model one run lacks leaves its cell empty
    assert "| vote of 2 | 0.6900 / 0.6800 |  |" in table and "| forest of 2 |  | 0.6900 / 0.6800 |" in table
    assert "member of" not in table  # a member alone has its own row
    assert "| what ships | member (BERT): 0.7500 / 0.7500 | member (ALBERT): 0.7000 / 0.7000 |" in table


def test_table3_comes_from_make_ablate_when_it_ran(tmp_path: Path) -> None:
    reports = _reports(tmp_path)
    assert "table3" not in render_results.tables(reports)
    (reports / "ablation").mkdir()
    rows = [{"row": "softmax+CE", "dev_f1": 0.33, "test_f1": 0.3, "seconds": 44.4, "epochs_run": 4}]
    (reports / "ablation" / "table3.json").write_text(json.dumps(rows))
    assert "| softmax+CE | 0.3300 | 0.3000 | 44 | 4 | 0.799 |" in render_results.tables(reports)["table3"]


def _teacher_and_student(reports: Path) -> None:
    """The teach and student stages' reports, as they write them (a vote teacher, two student seeds)."""
    thresholds = [{"threshold": 0.9, "sentences": 300, "share": 0.5, "f1": 0.81},
                  {"threshold": 0.0, "sentences": 600, "share": 1.0, "f1": 0.7412}]
    teach = {"teacher": {"path": "models/ensemble", "kind": "vote", "members": ["bert", "roberta"],
                         "model_version": "abc"}, "unlabeled_sentences": 900, "labelled": 900,
             "mean_confidence": 0.93, "dev_thresholds": thresholds, "sha256": "0" * 64}
    seeds = {str(seed): {"dev_f1": f1, "best_epoch": 7, "seconds": 100.0, "model_dir": f"models/student/seed-{seed}/bert"}
             for seed, f1 in ((13, 0.733), (14, 0.737))}
    chosen = {"kind": "member", "members": ["student"], "reason": "no combiner beats student alone by 0.01 dev F1"}
    student = {"silver": {"sentences": 12345}, "seeds": seeds, "mean_dev_f1": 0.735, "chosen": chosen,
               "shipped_dir": "models/shipped", "model_version": "def", "test": {"f1": 0.7011}}  # it ships: scored once
    (reports / "teach.json").write_text(json.dumps(teach))
    (reports / "student.json").write_text(json.dumps(student))


def test_teacher_and_student_rows_appear_only_once_their_reports_exist(tmp_path: Path) -> None:
    reports = _reports(tmp_path)
    before = render_results.tables(reports)
    assert "teacher" not in before and "student" not in before
    assert "teacher" not in before["summary"] and "teacher" not in before["table2"]
    _teacher_and_student(reports)
    generated = render_results.tables(reports)
    teacher_row = "| teacher: vote (BERT + RoBERTa) | 0.7412 | not scored |"  # its F1 on every dev sentence
    student_row = "| student: BERT slot, gold + 12,345 silver sentences (mean of 2 seeds) | 0.7350 | 0.7011 |"
    for table in ("summary", "table2"):
        assert teacher_row in generated[table] and student_row in generated[table]
    assert generated["summary"].index("the stack's choice") < generated["summary"].index(teacher_row)
    assert before["choice"].startswith("**What ships:** member (BERT)")  # the stack's rule, before the student
    assert generated["choice"] == ("**What ships:** member (student): "  # the student stage's rule
                                   "no combiner beats student alone by 0.01 dev F1.")
    assert "| BERT+RoBERTa | 0.7200 | 0.6800 | best on dev |" in generated["table2"]  # the combinations' best
    assert generated["teacher"].splitlines()[2:] == ["| 0 | 600 | 100.0% | 0.7412 |", "| 0.9 | 300 | 50.0% | 0.8100 |"]
    assert "| 13 | 0.7330 | 7 |" in generated["student"] and "| mean | 0.7350 | |" in generated["student"]
    assert generated["student"].endswith("**What ships with the student as a candidate:** member (student): "
                                         "no combiner beats student alone by 0.01 dev F1.")
    text = "<!-- results:student -->\n(not yet run)\n<!-- /results:student -->\n"
    assert render_results.render(text, before) == text  # no report: what is between the markers stays
    assert "| 14 | 0.7370 | 7 |" in render_results.render(text, generated)


def test_every_document_carries_the_markers() -> None:
    names = {"README.md": ["summary", "choice", "profiles"],
             "results.md": ["choice", "scores", "per-type", "table2", "combiners", "diversity", "crossfit-choice",
                            "crossfit-combiners", "crossfit-members", "table3", "monpa", "teacher", "student"]}
    for document in render_results.DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for name in names[document.name]:
            assert f"<!-- results:{name} -->" in text and f"<!-- /results:{name} -->" in text
