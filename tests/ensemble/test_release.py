"""The release: what ships retrained on every labeled sentence; a shipped student as a release student
taught by a release teacher. Tiny real trainings (a few steps each) on real sentences."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from healthner.config import Params
from healthner.corpus.readers import Sentence, write_sentences
from healthner.ensemble.kinds import MemberKind
from healthner.ensemble.release import SILVER_FILE, STUDENT_DIR, TEACHER_DIR, release
from healthner.ensemble.shipped import Ensemble, read_manifest, save_ensemble
from healthner.ensemble.shipping import choose, selection_record
from healthner.ensemble.student import STUDENT, load_silver, provenance, ship, student_params
from healthner.ensemble.teach import teach
from healthner.errors import ModelIntegrityError
from healthner.model.train import SUMMARY_FILE, train
from tests.tiny_models import N_TRAIN, untrained_ensemble

TEXTS = ["頭痛發燒三天了，要吃什麼藥", "糖尿病人可以吃水果嗎", "膽結石需要開刀嗎", "咳嗽一直不好"]
MEMBER_F1 = 0.5  # the member's recorded dev F1; the student's is set above or below it to pick the branch


def _evaluated(params: Params, sentences: list[Sentence], tmp_path: Path, student_f1: float) -> Params:
    """A whole evaluated run in miniature: a trained member shipped by the stack (the teacher), its silver
    labels of TEXTS, a trained student seed, and the rule's choice in student.shipped_dir."""
    import pyarrow as pa

    unlabeled = tmp_path / "unlabeled.parquet"
    pq.write_table(pa.table({"sentence_id": [f"u:{k}" for k in range(len(TEXTS))], "text": TEXTS,
                             "source": ["a.txt"] * len(TEXTS)}), unlabeled)
    params = params.with_updates(
        train={"epochs": 1, "max_steps": 4},
        stack={"output_dir": tmp_path / "ensemble"},
        unlabeled={"output": unlabeled},
        teach={"teacher": tmp_path / "ensemble", "output": tmp_path / "silver" / "silver.parquet",
               "report": tmp_path / "teach.json", "batch_sentences": 4, "min_confidence": 0.0},  # a tiny teacher is unsure
        student={"output_dir": tmp_path / "student", "reports_dir": tmp_path / "student_reports", "seeds": [13],
                 "shipped_dir": tmp_path / "shipped", "slot": "bert", "overrides": {}},
        release={"source_dir": tmp_path / "shipped", "output_dir": tmp_path / "release",
                 "work_dir": tmp_path / "release_work", "reports_dir": tmp_path / "release_reports"},
    )
    prepared = params.prepare.output_dir
    write_sentences(sentences[: N_TRAIN - 40], prepared / "train.parquet")
    write_sentences(sentences[N_TRAIN - 40 : N_TRAIN], prepared / "test.parquet")  # dev.parquet: tiny_params'
    member = train(params, "bert")
    choice = choose({"bert": MEMBER_F1}, {}, params.stack)
    save_ensemble(params.stack.output_dir, MemberKind(["bert"]), {"bert": member.model_dir},
                  selection_record({"bert": MEMBER_F1}, {}, choice))
    teach(params)
    silver = load_silver(params, params.teach.output)
    run = train(student_params(params, 13), "bert", silver=silver)
    ship(params, {13: dataclasses.replace(run, best_dev_f1=student_f1)}, provenance(params, silver))
    return params


def test_a_shipped_student_is_released_as_a_student_of_the_release_teacher(
    tiny_params: Params, real_sentences: list[Sentence], tmp_path: Path
) -> None:
    params = _evaluated(tiny_params, real_sentences, tmp_path, student_f1=0.9)
    shipped = read_manifest(params.student.shipped_dir)
    assert shipped["members"] == [STUDENT]
    result = release(params)

    released = read_manifest(params.release.output_dir)
    work = params.release.work_dir
    release_teacher = read_manifest(work / TEACHER_DIR)
    assert (released["kind"], released["members"]) == ("member", [STUDENT]) and result.members == [STUDENT]
    assert released["model_version"] == result.model_version != shipped["model_version"]
    origin = released["provenance"]
    assert origin["teacher"]["model_version"] == release_teacher["model_version"] == result.teacher.model_version
    assert release_teacher["model_version"] != read_manifest(params.teach.teacher)["model_version"]
    assert origin["teacher"]["path"] == str(work / TEACHER_DIR)
    assert origin["silver"]["sha256"] == hashlib.sha256((work / SILVER_FILE).read_bytes()).hexdigest()
    assert origin["student"] == shipped["provenance"]["student"] and origin["seed"] == 13
    # the same unlabeled sentences, relabelled by the release teacher
    evaluated_silver = pq.read_table(params.teach.output, columns=["text"]).column("text").to_pylist()
    assert pq.read_table(work / SILVER_FILE, columns=["text"]).column("text").to_pylist() == evaluated_silver
    # both trained on every labeled sentence (a member teacher needs no dev held out)
    every = len(real_sentences)
    assert released["selection"]["release"] == {"trained_on": every, "held_out_dev": 0,
                                                "evaluated_model_version": shipped["model_version"]}
    assert release_teacher["selection"]["release"]["trained_on"] == every
    summary = json.loads((params.release.output_dir / STUDENT / SUMMARY_FILE).read_text())
    assert summary["silver_windows"] >= len(evaluated_silver) and summary["dev_sentences"] == 0
    assert summary["model_dir"] == str(work / STUDENT_DIR / "models" / "bert")
    assert Ensemble.load(params.release.output_dir).predict([list("頭痛發燒三天")])[0].tags


def test_a_release_refuses_a_student_whose_teacher_changed(
    tiny_params: Params, real_sentences: list[Sentence], tmp_path: Path
) -> None:
    params = _evaluated(tiny_params, real_sentences, tmp_path, student_f1=0.9)
    other = params.with_updates(teach={"teacher": untrained_ensemble(tmp_path / "other")})
    with pytest.raises(ModelIntegrityError, match="rerun the student"):
        release(other)
    changed = params.with_updates(student={"silver_weight": 0.5})
    with pytest.raises(ModelIntegrityError, match="other student settings"):
        release(changed)
    assert not params.release.output_dir.exists()


def test_when_the_student_does_not_ship_the_release_retrains_what_the_stack_shipped(
    tiny_params: Params, real_sentences: list[Sentence], tmp_path: Path
) -> None:
    params = _evaluated(tiny_params, real_sentences, tmp_path, student_f1=0.1)
    shipped = read_manifest(params.student.shipped_dir)
    assert shipped["members"] == ["bert"] and "provenance" not in shipped
    result = release(params)

    released = read_manifest(params.release.output_dir)
    assert (released["kind"], released["members"]) == ("member", ["bert"]) and result.teacher is None
    assert "provenance" not in released and released["model_version"] != shipped["model_version"]
    assert released["selection"]["release"] == {"trained_on": len(real_sentences), "held_out_dev": 0,
                                                "evaluated_model_version": shipped["model_version"]}
    assert not (params.release.work_dir / SILVER_FILE).exists() and not (params.release.work_dir / TEACHER_DIR).exists()
