"""Teacher and student: silver data written and read back, a student trained on it, the rule with the student."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from healthner.config import Params, load_params
from healthner.corpus.labels import TAGS
from healthner.ensemble.combiner import Prediction
from healthner.ensemble.kinds import MemberKind
from healthner.ensemble.shipped import Ensemble, read_manifest, save_ensemble
from healthner.ensemble.shipping import Choice, KindScore, choose, selection_record
from healthner.ensemble.student import BEST_DIR, STUDENT, ship, shipped_test_scores, student_params, train_seeds
from healthner.ensemble.teach import confidence, teach
from healthner.errors import ModelIntegrityError
from healthner.model.silver import SilverSet
from healthner.model.train import SUMMARY_FILE, TrainResult, train
from healthner.sections.ensemble import StackParams
from tests.tiny_models import REPO, untrained_ensemble

TEXTS = [
    "頭痛發燒三天了，要吃什麼藥", "糖尿病人可以吃水果嗎", "膽結石需要開刀嗎",
    "咳嗽一直不好", "維生素D缺乏會怎樣", "醫生說是感冒",
]


def test_confidence_is_the_mean_probability_of_the_teachers_own_tags() -> None:
    probs = np.full((2, len(TAGS)), 0.0, dtype=np.float32)
    probs[0, TAGS.index("O")], probs[0, 1] = 0.9, 0.1
    probs[1, TAGS.index("O")], probs[1, 1] = 0.4, 0.6
    assert confidence(Prediction(["O", "O"], probs)) == pytest.approx((0.9 + 0.4) / 2)
    assert confidence(Prediction([], np.zeros((0, len(TAGS))))) == 1.0


@pytest.fixture
def taught(tiny_params: Params, tmp_path: Path) -> Params:
    """The tiny params with a random-weight teacher that has labelled TEXTS into tmp_path."""
    unlabeled = tmp_path / "unlabeled.parquet"
    pq.write_table(pa.table({"sentence_id": [f"u:{k}" for k in range(len(TEXTS))], "text": TEXTS,
                             "source": ["a.txt"] * 3 + ["b.csv"] * 3}), unlabeled)
    params = tiny_params.with_updates(
        unlabeled={"output": unlabeled},
        teach={"teacher": untrained_ensemble(tmp_path / "teacher"), "output": tmp_path / "silver" / "silver.parquet",
               "report": tmp_path / "teach.json", "max_sentences": 5, "batch_sentences": 2},
        student={"output_dir": tmp_path / "student", "reports_dir": tmp_path / "student_reports", "seeds": [13],
                 "slot": "bert", "overrides": {}},
    )
    teach(params)
    return params


def test_teach_writes_tags_probabilities_and_confidence_per_sentence(taught: Params) -> None:
    silver = pq.read_table(taught.teach.output).to_pylist()
    assert [row["text"] for row in silver] == TEXTS[:5]  # max_sentences
    teacher = Ensemble.load(taught.teach.teacher).predict([list(TEXTS[0])])[0]
    assert silver[0]["tags"] == teacher.tags
    assert np.allclose(np.asarray(silver[0]["marginals"]), teacher.probs, atol=1e-6)
    report = json.loads(taught.teach.report.read_text())
    assert report["labelled"] == 5 and report["unlabeled_sentences"] == len(TEXTS)
    assert report["teacher"]["model_version"] == read_manifest(taught.teach.teacher)["model_version"]
    assert [row["threshold"] for row in report["dev_thresholds"]] == sorted({0.0, *taught.teach.thresholds})


def test_silver_filters_reconcile_and_smaller_fractions_nest(taught: Params) -> None:
    everything = SilverSet.load(taught.teach.output, 0.0, 1.0, soft=True)
    assert len(everything) == everything.read == 5 and everything.sources == ["a.txt", "b.csv"]
    for k, chars in enumerate(everything.chars):
        assert everything.marginals[k].shape == (len(chars), len(TAGS)) and len(everything.tags[k]) == len(chars)
    cut = float(np.median(pq.read_table(taught.teach.output).column("confidence").to_numpy()))
    confident = SilverSet.load(taught.teach.output, cut, 1.0, soft=False)
    assert confident.marginals is None and 0 < len(confident) < 5
    assert len(confident) + confident.below_confidence == 5
    half = SilverSet.load(taught.teach.output, 0.0, 0.5, soft=False)
    quarter = SilverSet.load(taught.teach.output, 0.0, 0.25, soft=False)
    assert len(half) == 2 and half.outside_fraction == 3 and set(quarter.sentence_ids) <= set(half.sentence_ids)


@pytest.mark.parametrize("targets, curriculum", [("soft", "silver_then_gold"), ("hard", "mixed")])
def test_a_student_trains_on_gold_and_silver(taught: Params, targets: str, curriculum: str) -> None:
    params = taught.with_updates(student={"targets": targets, "curriculum": curriculum, "silver_epochs": 1},
                                 train={"epochs": 1})
    silver = SilverSet.load(params.teach.output, 0.0, 1.0, soft=targets == "soft")
    result = train(student_params(params, 13), "bert", silver=silver)
    assert result.model_dir == params.student.output_dir / "seed-13" / "bert"
    summary = json.loads((result.model_dir / SUMMARY_FILE).read_text())
    assert summary["silver_windows"] >= len(silver)
    gold_batches = -(-summary["train_windows"] // params.train.batch_size)
    silver_batches = -(-summary["silver_windows"] // params.train.batch_size)
    assert result.steps == gold_batches + silver_batches  # one epoch of each (curriculum) or of both (mixed)
    assert result.epochs_run == (2 if curriculum == "silver_then_gold" else 1)


def test_seeds_trained_side_by_side_are_the_students_trained_one_after_the_other(taught: Params) -> None:
    params = taught.with_updates(student={"seeds": [13, 14], "curriculum": "mixed"}, train={"epochs": 1})
    silver = SilverSet.load(params.teach.output, 0.0, 1.0, soft=False)
    apart = train_seeds(params, silver)
    together = train_seeds(params.with_updates(student={"workers": 2}), silver)  # two processes, 1 thread each
    assert list(together) == [13, 14]
    for seed in (13, 14):
        assert together[seed].model_dir == apart[seed].model_dir == params.student.output_dir / f"seed-{seed}" / "bert"
        assert (together[seed].best_dev_f1, together[seed].steps) == (apart[seed].best_dev_f1, apart[seed].steps)


def test_student_params_keep_the_slot_overrides_under_the_students(tiny_params: Params) -> None:
    params = tiny_params.with_updates(encoders={"bert": {"overrides": {"model": {"lstm_hidden": 24, "use_lexicon": False}}}},
                                      student={"slot": "bert", "overrides": {"model": {"lac": "off", "lstm_hidden": 8}}})
    slot = student_params(params, 14).for_slot("bert")
    assert (slot.model.lstm_hidden, slot.model.use_lexicon, slot.model.lac) == (8, False, "off")
    assert slot.train.seed == 14 and slot.train.output_dir == params.student.output_dir / "seed-14"


# --- the shipping rule with the student ---------------------------------------------------------------

MEMBERS_F1 = {"bert": 0.70, "albert": 0.72}


def _choose(student_runs: list[float], vote: float) -> Choice:
    return choose(
        MEMBERS_F1, {"vote": KindScore([vote, vote])}, StackParams(min_gain=0.01), {STUDENT: KindScore(student_runs)}
    )


def test_the_student_ships_when_it_is_the_best_single_model_and_no_combiner_beats_it_by_min_gain() -> None:
    choice = _choose([0.735, 0.745], vote=0.745)  # vote +0.005 over the student's mean: not enough
    assert (choice.kind, choice.members, choice.best_member) == ("member", [STUDENT], STUDENT)
    assert choice.dev_f1 == pytest.approx(0.74)


def test_a_combiner_that_beats_the_student_by_min_gain_ships() -> None:
    choice = _choose([0.735, 0.745], vote=0.755)
    assert (choice.kind, choice.best_member) == ("vote", STUDENT)
    assert choice.members == list(StackParams().members)


def test_the_student_is_compared_by_the_mean_of_its_seeds_not_its_best_seed() -> None:
    choice = _choose([0.80, 0.62], vote=0.70)
    assert (choice.kind, choice.members) == ("member", ["albert"])


@pytest.fixture
def stacked(tmp_path: Path) -> tuple[Params, dict[int, TrainResult]]:
    """A stack folder shipping albert alone with its recorded scores, and two 'student seeds' (member folders)."""
    folder = untrained_ensemble(tmp_path / "random").parent / "members"
    params = load_params(REPO / "params.yaml").with_updates(
        stack={"output_dir": tmp_path / "ensemble", "members": ["bert", "albert"], "min_gain": 0.01},
        student={"shipped_dir": tmp_path / "shipped", "output_dir": tmp_path / "student"},
    )
    choice = choose(MEMBERS_F1, {"vote": KindScore([0.70, 0.70])}, params.stack)
    record = selection_record(MEMBERS_F1, {"vote": KindScore([0.70, 0.70])}, choice)
    save_ensemble(params.stack.output_dir, MemberKind(["albert"]), {"albert": folder / "albert"}, record)
    runs = {seed: TrainResult("bert", f1, 1, 1.0, folder / "bert") for seed, f1 in ((13, 0.75), (14, 0.73))}
    return params, runs


ORIGIN = {"teacher": {"model_version": "abc"}, "silver": {"sha256": "0" * 64, "sentences": 5, "sources": ["a.txt"]},
          "student": {"targets": "soft"}}


def test_a_shipped_student_carries_its_provenance_in_model_version(stacked) -> None:
    params, runs = stacked
    choice, version = ship(params, runs, ORIGIN)
    assert choice.members == [STUDENT]
    manifest = read_manifest(params.student.shipped_dir)
    assert manifest["model_version"] == version and manifest["provenance"]["seed"] == 13  # the best seed ships
    assert manifest["selection"]["students_dev_f1"][STUDENT]["runs"] == [0.75, 0.73]
    assert Ensemble.load(params.student.shipped_dir).members == [STUDENT]
    assert read_manifest(params.student.output_dir / BEST_DIR)["model_version"] == version  # the same folder
    path = params.student.shipped_dir / "ensemble.json"
    edited = json.loads(path.read_text())
    edited["provenance"]["silver"]["sentences"] = 6
    path.write_text(json.dumps(edited))
    with pytest.raises(ModelIntegrityError):
        read_manifest(params.student.shipped_dir)


def test_provenance_changes_model_version(stacked) -> None:
    params, runs = stacked
    _, first = ship(params, runs, ORIGIN)
    _, second = ship(params, runs, {**ORIGIN, "teacher": {"model_version": "def"}})
    assert first != second


def test_only_a_shipped_student_is_scored_on_test(taught: Params) -> None:
    params = taught.with_updates(train={"epochs": 1})
    prepared = params.prepare.output_dir
    shutil.copy(prepared / "dev.parquet", prepared / "test.parquet")  # the tiny dev sentences stand in for test
    run = train_seeds(params, SilverSet.load(params.teach.output, 0.0, 1.0, soft=False))
    shipped = Choice("member", [STUDENT], 0.7, STUDENT, 0.7, 0.01, "best single model")
    scores = shipped_test_scores(params, shipped, run)
    assert scores is not None and 0.0 <= scores["f1"] <= 1.0 and "per_type" in scores
    beaten = Choice("vote", ["bert", "albert"], 0.8, STUDENT, 0.7, 0.01, "vote beats the student")
    assert shipped_test_scores(params, beaten, run) is None


def test_when_the_student_loses_the_stacks_model_is_shipped_unchanged(stacked) -> None:
    params, runs = stacked
    losing = {seed: TrainResult("bert", 0.60, 1, 1.0, run.model_dir) for seed, run in runs.items()}
    choice, version = ship(params, losing, ORIGIN)
    assert (choice.kind, choice.members) == ("member", ["albert"])
    stacked_manifest = read_manifest(params.stack.output_dir)
    shipped = read_manifest(params.student.shipped_dir)
    assert version == shipped["model_version"] == stacked_manifest["model_version"]
    assert "provenance" not in shipped and shipped["selection"]["students_dev_f1"][STUDENT]["mean"] == pytest.approx(0.60)
    best = read_manifest(params.student.output_dir / BEST_DIR)  # the losing student can still be tagged with, timed
    assert best["members"] == [STUDENT] and best["provenance"]["seed"] == 13 and best["model_version"] != version
