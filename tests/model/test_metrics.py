"""healthner.model.metrics.score: hand-worked cases, and equality with seqeval's default (conlleval) mode
on random tag sequences, invalid BIO included."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from healthner.model.metrics import score

TOL = 1e-9
AVERAGES = ("micro avg", "macro avg", "weighted avg")  # seqeval's summary rows, not entity types

# A few types keep random gold and predicted entities colliding often enough to test matches.
FEW_TAGS = ["O", "B-BODY", "I-BODY", "B-DISE", "I-DISE", "B-TIME", "I-TIME"]


# --- hand-worked cases (numbers worked out by hand, not by a scorer) -----------------------------


def test_paper_example_with_one_boundary_error() -> None:
    # gold: [膽汁]BODY 長期滯留就會比較容易造成 [膽沙]DISE 和 [膽結石]DISE
    gold = [["B-BODY", "I-BODY", "O", "B-DISE", "I-DISE", "O", "B-DISE", "I-DISE", "I-DISE", "O", "O"]]
    pred = [["B-BODY", "I-BODY", "O", "B-DISE", "I-DISE", "O", "B-DISE", "I-DISE", "O", "O", "O"]]
    s = score(gold, pred)
    # 3 gold, 3 predicted, 2 exact (膽結石 cut short is wrong): P = R = F = 2/3
    assert s.overall.precision == pytest.approx(2 / 3)
    assert s.overall.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert (s.per_type["BODY"].f1, s.per_type["BODY"].support) == (1.0, 1)
    dise = s.per_type["DISE"]
    assert (dise.precision, dise.recall, dise.f1, dise.support) == (0.5, 0.5, 0.5, 2)
    assert set(s.per_type) == {"BODY", "DISE"}


def test_i_after_o_opens_an_entity() -> None:
    # conlleval reads O I-SYMP I-SYMP as one SYMP entity at 1..3, equal to B-SYMP I-SYMP
    s = score([["O", "I-SYMP", "I-SYMP", "O"]], [["O", "B-SYMP", "I-SYMP", "O"]])
    assert (s.overall.precision, s.overall.recall, s.f1) == (1.0, 1.0, 1.0)


def test_i_after_another_type_splits_the_entity() -> None:
    # predicted B-DRUG I-CHEM is DRUG(0,1) + CHEM(1,2); gold is DRUG(0,2): nothing correct
    s = score([["B-DRUG", "I-DRUG"]], [["B-DRUG", "I-CHEM"]])
    assert (s.overall.precision, s.overall.recall, s.f1) == (0.0, 0.0, 0.0)
    assert (s.per_type["DRUG"].support, s.per_type["CHEM"].support) == (1, 0)
    assert s.per_type["CHEM"].precision == 0.0


def test_entities_end_at_sentence_ends() -> None:
    # sentence 2 of gold: an entity ends at the last character; the next sentence's I- is a new entity
    gold = [["O", "B-TIME"], ["B-TIME", "I-TIME"], ["I-TIME"]]
    pred = [["O", "B-TIME"], ["B-TIME", "O"], ["B-TIME"]]
    s = score(gold, pred)
    # gold: TIME(1,2), TIME(0,2), TIME(0,1); pred: TIME(1,2), TIME(0,1), TIME(0,1) -> correct: s1 and s3
    assert s.overall.precision == pytest.approx(2 / 3)
    assert s.overall.recall == pytest.approx(2 / 3)
    assert s.per_type["TIME"].support == 3


def test_no_predictions_scores_zero_without_error() -> None:
    s = score([["B-EXAM", "I-EXAM", "O"]], [["O", "O", "O"]])
    assert (s.overall.precision, s.overall.recall, s.f1) == (0.0, 0.0, 0.0)
    assert s.per_type["EXAM"].support == 1


def test_precision_recall_differ() -> None:
    # 4 gold, 2 predicted, both right: P = 1, R = 1/2, F = 2PR/(P+R) = 2/3
    gold = [["B-BODY", "O", "B-DISE", "O", "B-TIME", "B-TIME"]]
    pred = [["B-BODY", "O", "B-DISE", "O", "O", "O"]]
    s = score(gold, pred)
    assert (s.overall.precision, s.overall.recall) == (1.0, 0.5)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.per_type["TIME"].recall == 0.0


def test_as_dict_shape() -> None:
    d = score([["B-BODY", "I-BODY"]], [["B-BODY", "I-BODY"]]).as_dict()
    assert set(d) == {"precision", "recall", "f1", "per_type"}
    assert d["per_type"]["BODY"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        score([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="gold sentences"):
        score([["O"]], [])


# --- equality with seqeval (default mode = conlleval) --------------------------------------------


@st.composite
def gold_and_predicted(draw: st.DrawFn) -> tuple[list[list[str]], list[list[str]]]:
    """Random sentence pairs of equal length; any tag anywhere, so invalid BIO is common."""
    lengths = draw(st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6))
    tags = st.sampled_from(FEW_TAGS)
    gold = [draw(st.lists(tags, min_size=n, max_size=n)) for n in lengths]
    pred = [draw(st.lists(tags, min_size=n, max_size=n)) for n in lengths]
    return gold, pred


def _seqeval(gold: list[list[str]], pred: list[list[str]]) -> tuple[tuple[float, float, float], dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning when a side has no entities
        overall = (precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred))
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
    return overall, {k: v for k, v in report.items() if k not in AVERAGES}


@settings(max_examples=300, deadline=None)
@given(gold_and_predicted())
def test_equals_seqeval_default_mode(pair: tuple[list[list[str]], list[list[str]]]) -> None:
    gold, pred = pair
    ours = score(gold, pred)
    overall, per_type = _seqeval(gold, pred)
    assert (ours.overall.precision, ours.overall.recall, ours.f1) == pytest.approx(overall, abs=TOL)
    # seqeval lists every type with a gold or a predicted entity; so do we
    assert set(ours.per_type) == set(per_type)
    for etype, theirs in per_type.items():
        mine = ours.per_type[etype]
        assert mine.precision == pytest.approx(float(theirs["precision"]), abs=TOL)
        assert mine.recall == pytest.approx(float(theirs["recall"]), abs=TOL)
        assert mine.f1 == pytest.approx(float(theirs["f1-score"]), abs=TOL)
        assert mine.support == int(theirs["support"])


def test_equals_seqeval_on_invalid_bio_examples() -> None:
    # fixed instances of each invalid pattern, so a failure names it even without hypothesis
    gold = [["O", "I-BODY", "I-DISE", "I-DISE"], ["B-TIME", "I-BODY"], ["I-DISE"]]
    pred = [["B-BODY", "I-BODY", "B-DISE", "I-DISE"], ["I-TIME", "I-TIME"], ["O"]]
    ours = score(gold, pred)
    overall, per_type = _seqeval(gold, pred)
    assert (ours.overall.precision, ours.overall.recall, ours.f1) == pytest.approx(overall, abs=TOL)
    assert {t: s.f1 for t, s in ours.per_type.items()} == pytest.approx(
        {t: float(v["f1-score"]) for t, v in per_type.items()}, abs=TOL
    )
