"""k-fold cross-fitting: the folds, the fold members' training data, the combiners fit on their
out-of-fold outputs, and (integration) crossfit -> stack -> evaluate on tiny trained members."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from healthner.config import Params
from healthner.corpus.readers import Sentence
from healthner.ensemble.crossfit import FOLDS_FILE, assign_folds, crossfit, fold_params, read_folds
from healthner.ensemble.kinds import MemberOutputs, VoteKind, fit_elsewhere
from healthner.ensemble.shipping import candidate_scores
from healthner.errors import ConfigError
from healthner.model.train import Windows
from healthner.sections.ensemble import StackParams
from tests.ensemble.test_kinds import one_hot, outputs_of, sentences

MEMBERS = ["bert", "roberta", "electra"]


def test_folds_are_disjoint_cover_every_sentence_and_follow_the_seed() -> None:
    ids = [f"s{i}" for i in range(101)]
    folds = assign_folds(ids, 3, seed=13)
    assert sorted(i for fold in folds for i in fold) == sorted(ids)
    assert sorted(len(f) for f in folds) == [33, 34, 34]
    assert all(fold == sorted(fold, key=ids.index) for fold in folds)  # corpus order inside a fold
    assert assign_folds(ids, 3, seed=13) == folds and assign_folds(ids, 3, seed=14) != folds


@pytest.mark.parametrize("folds, ok", [(0, True), (1, False), (2, True), (5, True)])
def test_one_fold_is_refused(folds: int, ok: bool) -> None:
    if ok:
        assert StackParams(crossfit={"folds": folds}).crossfit.folds == folds
    else:
        with pytest.raises(ValueError, match="at least 2"):
            StackParams(crossfit={"folds": folds})


def test_a_fold_member_never_sees_its_fold(tiny_params: Params) -> None:
    path = tiny_params.prepare.output_dir / "bert" / "train.parquet"
    every = Windows.read(path)
    import pyarrow.parquet as pq

    sent_ids = pq.read_table(path, columns=["sent_id"]).column("sent_id").to_pylist()
    held_out = frozenset(sorted(set(sent_ids))[::3])
    kept = Windows.read(path, held_out=held_out)
    expected = [ids for ids, s in zip(every.input_ids, sent_ids, strict=True) if s not in held_out]
    assert 0 < len(kept) == len(expected) < len(every)
    assert all(np.array_equal(a, b) for a, b in zip(kept.input_ids, expected, strict=True))


def test_concat_of_parts_is_the_whole() -> None:
    gold = sentences(30, np.random.default_rng(4))
    whole = outputs_of({m: gold for m in MEMBERS})
    whole.averaged = ([one_hot(t) for t in gold], gold)
    joined = MemberOutputs.concat([whole.subset(range(10)), whole.subset(range(10, 30))])
    assert joined.paths == whole.paths and joined.averaged[1] == whole.averaged[1]
    assert all(np.array_equal(a, b) for m in MEMBERS for a, b in zip(joined.marginals[m], whole.marginals[m], strict=True))


def spurious(gold: list[list[str]]) -> list[list[str]]:
    """A member that finds a TIME entity beside each gold entity, never on it."""
    out = []
    for tags in gold:
        start = 6 if tags.index(next(t for t in tags if t != "O")) < 4 else 0
        out.append(["O"] * start + ["B-TIME", "I-TIME"] + ["O"] * (6 - start))
    return out


def test_a_learned_combiner_is_fit_on_the_training_outputs_not_on_dev() -> None:
    """On the training outputs two members are right and one invents entities: the vote must ask for 2.
    On dev only one member is right, so a vote fit on dev would keep 1 (F1 1.0); fit on the training
    outputs it keeps nothing there (F1 0.0)."""
    gold_train, gold_dev = sentences(60, np.random.default_rng(5)), sentences(20, np.random.default_rng(6))
    training = outputs_of({"bert": gold_train, "roberta": gold_train, "electra": spurious(gold_train)})
    blank = [["O"] * 8 for _ in gold_dev]
    dev = outputs_of({"bert": gold_dev, "roberta": blank, "electra": blank})
    assert VoteKind(MEMBERS).fit(training, gold_train).min_votes == 2
    assert VoteKind(MEMBERS).fit(dev, gold_dev).min_votes == 1
    params = StackParams(members=MEMBERS, candidates=["vote", "mean_emissions"], selection_seeds=[13])
    assert fit_elsewhere("vote", MEMBERS, params, (training, gold_train), dev, 13) == blank
    dev.averaged = ([one_hot(t) for t in gold_dev], gold_dev)
    scores = candidate_scores(dev, gold_dev, MEMBERS, params, (training, gold_train))
    assert scores["vote"].runs == [0.0]
    assert scores["mean_emissions"].runs == [1.0]  # learns nothing: scored on dev as it is
    assert candidate_scores(dev, gold_dev, MEMBERS, params)["vote"].runs == [1.0]  # without: out-of-fold on dev


# --- integration: tiny members -> crossfit -> stack -> evaluate ---------------------------------


@pytest.fixture(scope="module")
def crossfitted(tiny_run: Params, tmp_path_factory: pytest.TempPathFactory) -> Params:
    root = tmp_path_factory.mktemp("crossfit")
    params = tiny_run.with_updates(
        stack={"members": ["bert", "albert"], "output_dir": str(root / "ensemble"),
               "crossfit": {"folds": 2, "epochs": 1, "output_dir": str(root / "crossfit"),
                            "reports_dir": str(root / "reports" / "crossfit"), "report": str(root / "crossfit.json")}},
        evaluate={"reports_dir": str(root / "reports"), "combinations": [["bert"], ["bert", "albert"]]},
    )
    crossfit(params)
    return params


def test_crossfit_trains_each_member_once_per_fold_and_reports(crossfitted: Params) -> None:
    cfg = crossfitted.stack.crossfit
    folds = read_folds(crossfitted)
    train_ids = {s.sent_id for s in _train(crossfitted)}
    assert len(folds) == 2 and set(folds[0]) | set(folds[1]) == train_ids and not set(folds[0]) & set(folds[1])
    for k in range(2):
        for slot in ("bert", "albert"):
            summary = json.loads((cfg.output_dir / f"fold{k}" / slot / "train_summary.json").read_text())
            held_out_windows = sum(1 for ids in _windows_of(crossfitted, slot) if ids in set(folds[k]))
            assert summary["train_windows"] == len(_windows_of(crossfitted, slot)) - held_out_windows
            assert summary["epochs_run"] == 1
    report = json.loads(cfg.report.read_text())
    assert report["folds"] == 2 and [(m["slot"], m["fold"]) for m in report["members"]] == [
        ("bert", 0), ("albert", 0), ("bert", 1), ("albert", 1)]
    assert set(report["full_dev_f1"]) == {"bert", "albert"}


def test_the_stack_fits_on_every_train_sentence_plus_dev(crossfitted: Params) -> None:
    from healthner.ensemble.shipped import Ensemble, read_manifest
    from healthner.ensemble.stack import fit_stack

    fit_stack(crossfitted)
    selection = read_manifest(crossfitted.stack.output_dir)["selection"]
    assert selection["fit_on"] == "train cross-fitted over 2 folds, plus dev"
    forest = Ensemble.load(crossfitted.stack.output_dir).kind.model
    chars = sum(len(s.chars) for s in _train(crossfitted)) + sum(len(s.chars) for s in _dev(crossfitted))
    assert forest.estimators_[0].tree_.weighted_n_node_samples[0] == round(chars * crossfitted.stack.max_samples)


def test_evaluate_scores_the_shipped_combiner_held_out_from_dev(crossfitted: Params) -> None:
    from healthner.ensemble.evaluate import evaluate
    from healthner.ensemble.stack import fit_stack

    fit_stack(crossfitted)
    metrics = evaluate(crossfitted)
    assert set(metrics["dev"]) >= {"bert", "albert", "shipped"}
    rows = json.loads((crossfitted.evaluate.reports_dir / "combiners.json").read_text())["rows"]
    assert {r["kind"] for r in rows} >= {"forest", "vote", "member"}
    assert "(2-fold cross-fitting), dev held out" in (crossfitted.evaluate.reports_dir / "combiners.md").read_text()


def test_a_stale_fold_record_is_refused(crossfitted: Params) -> None:
    with pytest.raises(ConfigError, match="run the crossfit step again"):
        read_folds(crossfitted.with_updates(stack={"crossfit": {"folds": 3}}))


def test_zero_folds_records_that_crossfit_is_off(tiny_run: Params, tmp_path: Path) -> None:
    params = tiny_run.with_updates(stack={"crossfit": {"folds": 0, "output_dir": str(tmp_path / "cf"),
                                                       "report": str(tmp_path / "cf.json")}})
    result = crossfit(params)
    assert "off" in str(result) and json.loads((tmp_path / "cf" / FOLDS_FILE).read_text()) == {"folds": 0}
    assert json.loads((tmp_path / "cf.json").read_text())["folds"] == 0
    assert fold_params(params, 1).train.output_dir == tmp_path / "cf" / "fold1"


def _train(params: Params) -> list[Sentence]:
    from healthner.corpus.readers import read_sentences

    return read_sentences(params.prepare.output_dir / "train.parquet")


def _dev(params: Params) -> list[Sentence]:
    from healthner.corpus.readers import read_sentences

    return read_sentences(params.prepare.output_dir / "dev.parquet")


def _windows_of(params: Params, slot: str) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(params.prepare.output_dir / slot / "train.parquet", columns=["sent_id"])
    return table.column("sent_id").to_pylist()
