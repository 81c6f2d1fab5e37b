"""The random-forest stacker: features, BIO-constrained decoding, fitting on real dev tags,
skops persistence with an explicit trust list, and (integration) the ensemble folder and evaluate
on tiny trained models.

Unit tests build marginals from REAL corpus tags plus noise: real-shaped (n_chars, 21) arrays
with real entity statistics, so the forest is exercised on what it will see, not on mocks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.tree import DecisionTreeClassifier

from healthner.config import Params
from healthner.corpus.labels import OUTSIDE, TAG_TO_ID, TAGS, is_valid_transition
from healthner.corpus.readers import Sentence
from healthner.ensemble.combiner import (
    N_TAGS,
    bio_viterbi,
    bio_viterbi_many,
    build_features,
    cross_validated_predictions,
    fit_forest,
    forest_inputs,
    n_features,
    predict_stack,
    sentence_features,
    subset_predictions,
    tag_probabilities,
)
from healthner.ensemble.kinds import FOREST_FILE, load_trusted
from healthner.ensemble.shipped import MANIFEST_FILE
from healthner.errors import ModelIntegrityError
from healthner.model.metrics import score
from healthner.sections.base import SLOTS
from healthner.sections.ensemble import StackParams

N_SLICE = 60  # real sentences the forest is fit on in unit tests (a few thousand characters)
SMALL = StackParams(n_estimators=12, min_samples_leaf=1, cv_folds=3, n_jobs=1, seed=0)


def valid_bio(tags: list[str]) -> bool:
    return all(is_valid_transition(prev, tag) for prev, tag in zip([OUTSIDE, *tags], tags))


def noisy_marginals(tags: list[str], rng: np.random.Generator, noise: float) -> np.ndarray:
    """One-hot on the real tag, blended with a random distribution; rows sum to 1, float32."""
    onehot = np.zeros((len(tags), N_TAGS), np.float32)
    onehot[np.arange(len(tags)), [TAG_TO_ID[t] for t in tags]] = 1.0
    random = rng.dirichlet(np.ones(N_TAGS), size=len(tags)).astype(np.float32)
    return (1 - noise) * onehot + noise * random


@pytest.fixture(scope="module")
def dev_slice(real_sentences: list[Sentence]) -> list[Sentence]:
    return real_sentences[:N_SLICE]


@pytest.fixture(scope="module")
def marginals(dev_slice: list[Sentence]) -> dict[str, list[np.ndarray]]:
    """Three 'members' of different quality on the real dev slice."""
    rng = np.random.default_rng(0)
    noise = {"bert": 0.3, "roberta": 0.5, "albert": 0.7}
    return {m: [noisy_marginals(s.tags, rng, n) for s in dev_slice] for m, n in noise.items()}


# --- features ------------------------------------------------------------------------------------


def test_features_centre_neighbours_and_padding_flags() -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.random((3, N_TAGS)).astype(np.float32) for _ in range(2))
    context = 2
    f = sentence_features([a, b], context)
    width = 2 * N_TAGS  # one position: both members' marginals
    assert f.shape == (3, n_features(2, context)) == (3, 5 * width + 2 * context)
    block = lambda offset: f[:, (offset + context) * width : (offset + context + 1) * width]
    flags = f[:, 5 * width :]  # offsets -2, -1, +1, +2
    np.testing.assert_array_equal(block(0), np.hstack([a, b]))
    np.testing.assert_array_equal(block(-1)[1:], np.hstack([a, b])[:-1])
    np.testing.assert_array_equal(block(+2)[0], np.hstack([a, b])[2])
    assert not block(-1)[0].any() and not block(-2)[1].any() and not block(+1)[2].any()
    np.testing.assert_array_equal(flags, [[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1]])


def test_single_character_and_empty_sentences() -> None:
    one = sentence_features([np.full((1, N_TAGS), 1 / N_TAGS, np.float32)], 1)
    assert one.shape == (1, n_features(1, 1)) and one[0, -2:].tolist() == [1.0, 1.0]
    assert sentence_features([np.zeros((0, N_TAGS), np.float32)], 1).shape == (0, n_features(1, 1))


def test_build_features_stacks_sentences_and_checks_members(marginals: dict) -> None:
    features = build_features(marginals, ["bert", "albert"], 1)
    assert features.shape == (sum(len(m) for m in marginals["bert"]), n_features(2, 1))
    assert features.dtype == np.float32
    with pytest.raises(KeyError, match="electra"):
        build_features(marginals, ["bert", "electra"], 1)
    with pytest.raises(ValueError, match="number of sentences"):
        build_features({"bert": marginals["bert"], "albert": marginals["albert"][:-1]}, ["bert", "albert"], 1)
    with pytest.raises(ValueError, match="at least one member"):
        build_features(marginals, [], 1)


# --- decoding ------------------------------------------------------------------------------------


probability_rows = arrays(np.float64, st.tuples(st.integers(1, 20), st.just(N_TAGS)), elements=st.floats(0, 1))


@settings(max_examples=200, deadline=None)
@given(probability_rows)
def test_viterbi_never_emits_invalid_bio(probs: np.ndarray) -> None:
    tags = bio_viterbi(probs)  # unnormalised, zero rows, ties: all must still decode to valid BIO
    assert len(tags) == len(probs) and valid_bio(tags)


def test_viterbi_repairs_an_i_after_o_by_the_best_valid_path() -> None:
    probs = np.full((2, N_TAGS), 1e-6)
    probs[0, TAG_TO_ID["O"]], probs[0, TAG_TO_ID["B-BODY"]] = 0.9, 0.05
    probs[1, TAG_TO_ID["I-BODY"]], probs[1, TAG_TO_ID["B-BODY"]], probs[1, TAG_TO_ID["O"]] = 0.6, 0.3, 0.1
    # O,B-BODY = .27 beats O,O = .09 and B-BODY,I-BODY = .03
    assert bio_viterbi(probs) == ["O", "B-BODY"]
    assert bio_viterbi(np.zeros((0, N_TAGS))) == []


def test_viterbi_keeps_a_valid_argmax_path(dev_slice: list[Sentence]) -> None:
    s = next(s for s in dev_slice if valid_bio(s.tags) and any(t != OUTSIDE for t in s.tags))
    assert bio_viterbi(noisy_marginals(s.tags, np.random.default_rng(2), 0.4)) == s.tags


def reference_bio_viterbi(probs: np.ndarray) -> list[str]:
    """The per-sentence numpy decoder the batched one replaced, kept here as its reference."""
    allowed = np.array([[is_valid_transition(p, t) for t in TAGS] for p in TAGS])
    moves = np.where(allowed, 0.0, -np.inf)
    logp = np.log(np.clip(probs, 1e-9, None))
    score = logp[0] + np.array([0.0 if is_valid_transition(OUTSIDE, t) else -np.inf for t in TAGS])
    pointers = np.zeros(probs.shape, dtype=np.int64)
    for t in range(1, len(probs)):
        candidates = score[:, None] + moves
        pointers[t], score = candidates.argmax(axis=0), candidates.max(axis=0) + logp[t]
    best = [int(score.argmax())]
    for t in range(len(probs) - 1, 0, -1):
        best.append(int(pointers[t, best[-1]]))
    return [TAGS[i] for i in reversed(best)]


def test_batched_viterbi_equals_one_sentence_at_a_time(dev_slice: list[Sentence]) -> None:
    rng = np.random.default_rng(5)
    probs = [noisy_marginals(s.tags, rng, 0.8) for s in dev_slice] + [np.zeros((0, N_TAGS), np.float32)]
    assert bio_viterbi_many(probs) == [reference_bio_viterbi(p) if len(p) else [] for p in probs]


# --- fitting -------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_tag_probabilities_are_the_forests_predict_proba(dev_slice: list[Sentence], marginals: dict, threads: int) -> None:
    forest = fit_forest(marginals, [s.tags for s in dev_slice], ["bert", "albert"], SMALL)
    features = build_features(marginals, ["bert", "albert"], SMALL.context)
    expected = np.zeros((len(features), N_TAGS))
    expected[:, forest.classes_] = forest.predict_proba(features)
    np.testing.assert_allclose(tag_probabilities(forest, features, threads), expected, rtol=0, atol=1e-6)


def test_forest_classes_are_mapped_back_to_all_tags(dev_slice: list[Sentence], marginals: dict) -> None:
    # real sentences without any TIME entity: the forest never sees B-TIME / I-TIME
    keep = [i for i, s in enumerate(dev_slice) if not any(t.endswith("TIME") for t in s.tags)]
    subset = {"bert": [marginals["bert"][i] for i in keep]}
    forest = fit_forest(subset, [dev_slice[i].tags for i in keep], ["bert"], SMALL)
    seen = {TAGS[c] for c in forest.classes_}
    assert seen < set(TAGS) and "B-TIME" not in seen
    probs = tag_probabilities(forest, build_features(marginals, ["bert"], SMALL.context))
    assert probs.shape[1] == N_TAGS
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    unseen = [TAG_TO_ID[t] for t in TAGS if t not in seen]
    assert not probs[:, unseen].any()


def test_random_forest_on_a_real_dev_slice(dev_slice: list[Sentence], marginals: dict) -> None:
    gold = [s.tags for s in dev_slice]
    members = ["bert", "roberta", "albert"]
    forest = fit_forest(marginals, gold, members, SMALL)
    predictions = predict_stack(forest, marginals, members, SMALL.context)
    assert [len(p.tags) for p in predictions] == [len(s.chars) for s in dev_slice]
    assert all(p.probs.shape == (len(p.tags), N_TAGS) and valid_bio(p.tags) for p in predictions)
    cv = cross_validated_predictions(marginals, gold, members, SMALL)
    assert all(valid_bio(p.tags) for p in cv)
    base_f1 = score(gold, [bio_viterbi(m) for m in marginals["bert"]]).f1
    assert score(gold, [p.tags for p in cv]).f1 > 0.9 * base_f1  # out-of-fold, yet about as good as its best member


def test_viterbi_features_add_each_members_one_hot_path(dev_slice: list[Sentence], marginals: dict) -> None:
    members = ["bert", "roberta"]
    paths = {m: [bio_viterbi(a) for a in marginals[m]] for m in members}
    inputs, order = forest_inputs(marginals, paths, members, viterbi=True)
    assert order == ["bert", "roberta", "bert/viterbi", "roberta/viterbi"]
    first = inputs["bert/viterbi"][0]
    assert first.shape == marginals["bert"][0].shape and (first.sum(axis=1) == 1).all()
    assert [TAGS[i] for i in first.argmax(axis=1)] == paths["bert"][0]
    assert build_features(inputs, order, 1).shape[1] == n_features(4, 1)
    assert forest_inputs(marginals, None, members, viterbi=False)[1] == members
    with pytest.raises(ValueError, match="Viterbi tags"):
        forest_inputs(marginals, None, members, viterbi=True)
    gold = [s.tags for s in dev_slice]
    forest = fit_forest(inputs, gold, order, SMALL)
    assert all(valid_bio(p.tags) for p in predict_stack(forest, inputs, order, SMALL.context))


def test_cross_validation_is_not_optimistic(dev_slice: list[Sentence]) -> None:
    """Marginals of pure noise carry no signal: a forest scored on its own training sentences
    memorises them, out-of-fold it must not."""
    rng = np.random.default_rng(3)
    gold = [s.tags for s in dev_slice]
    noise = {"bert": [rng.dirichlet(np.ones(N_TAGS), size=len(t)).astype(np.float32) for t in gold]}
    in_sample = predict_stack(fit_forest(noise, gold, ["bert"], SMALL), noise, ["bert"], SMALL.context)
    out_of_fold = cross_validated_predictions(noise, gold, ["bert"], SMALL)
    assert score(gold, [p.tags for p in in_sample]).f1 > 0.5
    assert score(gold, [p.tags for p in out_of_fold]).f1 < 0.1


def test_subset_of_members(dev_slice: list[Sentence], marginals: dict) -> None:
    gold = [s.tags for s in dev_slice]
    half = len(dev_slice) // 2
    dev = {m: v[:half] for m, v in marginals.items()}
    other = {m: v[half:] for m, v in marginals.items()}
    for members in (["albert"], ["roberta", "albert"]):
        dev_pred, other_pred = subset_predictions(dev, gold[:half], other, members, SMALL)
        assert len(dev_pred) == half and len(other_pred) == len(dev_slice) - half
        assert all(valid_bio(p.tags) for p in dev_pred + other_pred)


# --- persistence ---------------------------------------------------------------------------------


class NotAForestPart:
    """A type skops has no reason to trust."""


def test_skops_round_trip_gives_identical_probabilities(tmp_path: Path, dev_slice: list, marginals: dict) -> None:
    forest = fit_forest(marginals, [s.tags for s in dev_slice], ["bert", "roberta"], SMALL)
    sio.dump(forest, tmp_path / FOREST_FILE)
    loaded = load_trusted(tmp_path / FOREST_FILE)
    features = build_features(marginals, ["bert", "roberta"], SMALL.context)
    np.testing.assert_array_equal(loaded.predict_proba(features), forest.predict_proba(features))


def test_skops_refuses_an_unexpected_type(tmp_path: Path, dev_slice: list, marginals: dict) -> None:
    forest = fit_forest(marginals, [s.tags for s in dev_slice], ["bert"], SMALL)
    forest.smuggled = NotAForestPart()
    (tmp_path / "tampered").mkdir()
    sio.dump(forest, tmp_path / "tampered" / FOREST_FILE)
    with pytest.raises(ModelIntegrityError, match="NotAForestPart"):
        load_trusted(tmp_path / "tampered" / FOREST_FILE)
    tree = DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])
    sio.dump(tree, tmp_path / FOREST_FILE)
    with pytest.raises(ModelIntegrityError, match="RandomForestClassifier"):
        load_trusted(tmp_path / FOREST_FILE)


# --- integration: tiny trained models -> ensemble folder -> evaluate ------------------------------


def test_ensemble_folder_is_self_contained(tiny_run: Params, tmp_path: Path) -> None:
    from healthner.ensemble.shipped import Ensemble

    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_run.stack.output_dir, moved)
    manifest = json.loads((moved / MANIFEST_FILE).read_text())
    assert manifest["members"] == list(SLOTS) and manifest["tags"] == list(TAGS)
    assert {p.name for p in moved.iterdir()} == {*SLOTS, FOREST_FILE, MANIFEST_FILE}
    ensemble = Ensemble.load(moved)
    assert ensemble.model_version == manifest["model_version"] and len(ensemble.model_version) == 12
    sentences = [list("膽汁長期滯留就會比較容易造成膽沙和膽結石了。"), ["痛"], []]
    predictions = ensemble.predict(sentences)
    assert [len(p.tags) for p in predictions] == [len(s) for s in sentences]
    assert all(valid_bio(p.tags) and p.probs.shape == (len(p.tags), N_TAGS) for p in predictions)
    np.testing.assert_allclose(predictions[0].probs.sum(axis=1), 1.0, rtol=1e-5)
    (moved / FOREST_FILE).write_bytes((moved / FOREST_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="changed since saving"):
        Ensemble.load(moved)


def test_a_stack_with_viterbi_features_ships_and_predicts(tiny_run: Params, tmp_path: Path) -> None:
    from healthner.ensemble.shipped import Ensemble
    from healthner.ensemble.stack import fit_stack

    params = tiny_run.with_updates(stack={"viterbi_features": True, "output_dir": str(tmp_path / "ensemble")})
    fit_stack(params)
    ensemble = Ensemble.load(tmp_path / "ensemble")
    assert ensemble.kind.viterbi_features
    assert ensemble.kind.model.n_features_in_ == n_features(2 * len(SLOTS), params.stack.context)
    sentences = [list("膽汁長期滯留就會比較容易造成膽沙和膽結石了。"), []]
    predictions = ensemble.predict(sentences)
    assert [len(p.tags) for p in predictions] == [len(s) for s in sentences]
    assert valid_bio(predictions[0].tags)


def test_evaluate_writes_every_report(tiny_run: Params) -> None:
    from healthner.ensemble.evaluate import evaluate

    metrics = evaluate(tiny_run)
    out = tiny_run.evaluate.reports_dir
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics and set(on_disk) == {"dev", "test"}
    for split in on_disk.values():
        assert set(split) == {*SLOTS, "shipped"}
        assert all({"precision", "recall", "f1", "per_type"} <= set(m) for m in split.values())
    table = json.loads((out / "table2.json").read_text())
    assert [row["members"] for row in table] == [["bert"], ["bert", "albert"], list(SLOTS)]
    assert table[-1]["dev_f1"] == metrics["dev"]["shipped"]["f1"]  # the shipped forest is the all-members row
    assert table[-1]["test_f1"] == metrics["test"]["shipped"]["f1"]
    assert "| BERT + ALBERT |" in (out / "table2.md").read_text()
    plots = out / "plots"
    for name in ("f1_per_type.png", "confusion.png", "confusion.csv", "learning_curves.png", "f1_per_type/shipped.csv",
                 "diversity.png"):
        assert (plots / name).is_file(), name
    assert (out / "errors.md").read_text().startswith("# Where the shipped model is most wrong")
    combiners = json.loads((out / "combiners.json").read_text())
    assert {row["kind"] for row in combiners["rows"]} == {"forest", "logistic", "vote", "mean_emissions", "member"}
    assert [row["kind"] for row in combiners["rows"] if row["ships"]] == ["forest"]
    pairs = json.loads((out / "diversity.json").read_text())
    assert len(pairs) == 6 and all(0.0 <= p["disagreement"] <= 1.0 and 0.0 <= p["error_overlap"] <= 1.0 for p in pairs)
