"""The stacker's combiner: features from the members' outputs, the random forest, its BIO decode.

Each character's features are every member's marginal distribution over the 21 tags at the
character and its `context` neighbours each side (zeros past the sentence ends, with a flag per
offset saying so), and with `stack.viterbi_features` each member's own CRF Viterbi tag there
(one-hot): the path the member would output alone, which its marginals do not determine. The
forest's per-character probabilities are decoded with a BIO-constrained Viterbi, so the stack
never emits an I- tag that does not continue an entity of the same type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GroupKFold

from healthner.corpus.labels import OUTSIDE, TAG_TO_ID, TAGS, is_valid_transition
from healthner.sections.ensemble import StackParams

N_TAGS = len(TAGS)
PROB_FLOOR = 1e-9  # probability of a tag the forest never saw, so that its log stays finite
BIO_BATCH_CHARS = 16384  # padded characters per batched BIO Viterbi

Marginals = Mapping[str, Sequence[np.ndarray]]  # member slot -> one (n_chars, 21) array per sentence
Paths = Mapping[str, Sequence[Sequence[str]]]  # member slot -> its Viterbi tags per sentence
VITERBI_INPUT = "{}/viterbi"  # the forest input holding a member's one-hot Viterbi tags


@dataclass(frozen=True)
class Prediction:
    tags: list[str]
    probs: np.ndarray  # (n_chars, 21) stack probabilities, columns in TAGS order


# --- features ------------------------------------------------------------------------------------


def n_features(n_members: int, context: int) -> int:
    """Marginals of every member at 2*context+1 positions, plus one padding flag per non-centre offset."""
    width = 2 * context + 1
    return width * n_members * N_TAGS + 2 * context


def sentence_features(member_marginals: Sequence[np.ndarray], context: int) -> np.ndarray:
    """(n_chars, n_features) for one sentence; positions past either end are zeros with their flag set."""
    n = member_marginals[0].shape[0]
    joined = np.concatenate([np.asarray(m, dtype=np.float32) for m in member_marginals], axis=1)
    padded = np.zeros((n + 2 * context, joined.shape[1]), dtype=np.float32)
    padded[context : context + n] = joined
    blocks = [padded[context + off : context + off + n] for off in range(-context, context + 1)]
    positions = np.arange(n)
    flags = [
        ((positions + off < 0) | (positions + off >= n)).astype(np.float32)[:, None]
        for off in range(-context, context + 1)
        if off != 0
    ]
    return np.concatenate(blocks + flags, axis=1)


def build_features(marginals: Marginals, members: Sequence[str], context: int) -> np.ndarray:
    """Features of every character of every sentence, sentences one after another."""
    _check_marginals(marginals, members)
    n_sent = len(marginals[members[0]])
    rows = [sentence_features([marginals[m][i] for m in members], context) for i in range(n_sent)]
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, n_features(len(members), context)), np.float32)


def _check_marginals(marginals: Marginals, members: Sequence[str]) -> None:
    if not members:
        raise ValueError("a stack needs at least one member")
    missing = [m for m in members if m not in marginals]
    if missing:
        raise KeyError(f"no marginals for member(s) {missing}")
    counts = {m: len(marginals[m]) for m in members}
    if len(set(counts.values())) != 1:
        raise ValueError(f"members disagree on the number of sentences: {counts}")
    for i, arrays in enumerate(zip(*(marginals[m] for m in members))):
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or next(iter(shapes))[1:] != (N_TAGS,):
            raise ValueError(f"sentence {i}: members' marginals have shapes {sorted(shapes)}, want (n, {N_TAGS})")


def one_hot_tags(tags: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(tags), N_TAGS), dtype=np.float32)
    out[np.arange(len(tags)), [TAG_TO_ID[t] for t in tags]] = 1.0
    return out


def forest_inputs(
    marginals: Marginals, paths: Paths | None, members: Sequence[str], viterbi: bool
) -> tuple[dict[str, Sequence[np.ndarray]], list[str]]:
    """The per-sentence arrays the forest reads, and their order: each member's marginals, then
    (with `viterbi`) each member's one-hot Viterbi tags, under VITERBI_INPUT names."""
    inputs: dict[str, Sequence[np.ndarray]] = {m: marginals[m] for m in members}
    if viterbi:
        if paths is None:
            raise ValueError("a stack with viterbi_features needs each member's Viterbi tags")
        inputs.update({VITERBI_INPUT.format(m): [one_hot_tags(t) for t in paths[m]] for m in members})
    return inputs, list(inputs)


def sentence_lengths(marginals: Marginals, members: Sequence[str]) -> list[int]:
    return [a.shape[0] for a in marginals[members[0]]]


# --- decoding ------------------------------------------------------------------------------------


def _transition_mask() -> tuple[np.ndarray, np.ndarray]:
    """Log-space penalties: 0 where strict BIO allows prev->tag (and start->tag), -inf where not."""
    allowed = np.array([[is_valid_transition(p, t) for t in TAGS] for p in TAGS])
    start = np.array([is_valid_transition(OUTSIDE, t) for t in TAGS])
    return np.where(allowed, 0.0, -np.inf), np.where(start, 0.0, -np.inf)


_TRANSITIONS, _START = _transition_mask()


def _bio_grammar():
    """Strict BIO as CRF scores: 0 for allowed moves (and starts), -inf otherwise; no end scores."""
    import torch

    from healthner.model.crf import CrfScores

    return CrfScores(torch.from_numpy(_START), torch.from_numpy(_TRANSITIONS), torch.zeros(N_TAGS, dtype=torch.float64))


BIO_GRAMMAR = _bio_grammar()


def bio_viterbi(probs: np.ndarray) -> list[str]:
    """The most probable tag sequence (product of per-character probabilities) that is valid BIO."""
    return bio_viterbi_many([probs])[0]


def bio_viterbi_many(sentence_probs: Sequence[np.ndarray]) -> list[list[str]]:
    """`bio_viterbi` of every sentence, in length-sorted padded batches through one batched Viterbi
    (crf.crf_viterbi, float64, strict-BIO moves at -inf) instead of a numpy loop per sentence."""
    import torch

    from healthner.model.crf import crf_viterbi
    from healthner.model.predict import padded_batches

    grammar = BIO_GRAMMAR
    lengths = [p.shape[0] for p in sentence_probs]
    found: list[list[str]] = [[] for _ in sentence_probs]
    order = sorted((k for k, n in enumerate(lengths) if n), key=lengths.__getitem__)
    for batch in padded_batches(order, lengths.__getitem__, BIO_BATCH_CHARS, presorted=True):
        # padded here, not by predict._pad_emissions (float32 only): float64 probabilities keep their precision
        logp = np.zeros((len(batch), lengths[batch[-1]], N_TAGS), dtype=np.float64)
        mask = np.zeros(logp.shape[:2], dtype=bool)
        for row, k in enumerate(batch):
            logp[row, : lengths[k]] = np.log(np.clip(sentence_probs[k], PROB_FLOOR, None))
            mask[row, : lengths[k]] = True
        best = crf_viterbi(torch.from_numpy(logp), torch.from_numpy(mask), grammar).tolist()
        for row, k in enumerate(batch):
            found[k] = [TAGS[i] for i in best[row][: lengths[k]]]
    return found


def tag_probabilities(forest: RandomForestClassifier, features: np.ndarray, threads: int = 1) -> np.ndarray:
    """(n, 21) probabilities in TAGS order; classes the forest never saw get probability 0.

    The forest's predict_proba (the mean of its trees' leaf distributions), computed from the trees
    directly: it skips the per-tree input checks and output copies that cost more than the tree walks
    on tagging-sized batches, and with `threads` > 1 walks the trees on threads (tree traversal
    releases the GIL). tests/ensemble/test_stack.py holds it to predict_proba. Walking the trees
    directly skips scikit-learn's own input checks, so the feature count is checked here.
    """
    if features.ndim != 2 or features.shape[1] != forest.n_features_in_:
        raise ValueError(f"the forest takes {forest.n_features_in_} features per character, got shape {features.shape}")
    out = np.zeros((features.shape[0], N_TAGS), dtype=np.float32)
    if features.shape[0]:
        rows = np.ascontiguousarray(features, dtype=np.float32)
        trees = [tree.tree_ for tree in forest.estimators_]
        workers = max(1, min(threads, len(trees)))
        parts = [trees[k::workers] for k in range(workers)]
        if len(parts) == 1:
            total = _sum_of_leaf_distributions(parts[0], rows)
        else:
            with ThreadPoolExecutor(len(parts)) as pool:
                total = sum(pool.map(_sum_of_leaf_distributions, parts, [rows] * len(parts)))
        out[:, np.asarray(forest.classes_, dtype=np.int64)] = total / len(trees)
    return out


def _sum_of_leaf_distributions(trees: Sequence, rows: np.ndarray) -> np.ndarray:
    total = np.zeros((rows.shape[0], trees[0].n_classes[0]), dtype=np.float64)
    for tree in trees:
        total += tree.predict(rows).reshape(total.shape)
    return total


def _split_rows(rows: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    return np.split(rows, np.cumsum(lengths)[:-1]) if lengths else []


def decode_probabilities(probs: np.ndarray, lengths: Sequence[int]) -> list[Prediction]:
    """Cut the stacked rows back into sentences and decode them."""
    rows = _split_rows(probs, lengths)
    return [Prediction(tags, p) for tags, p in zip(bio_viterbi_many(rows), rows, strict=True)]


# --- fitting -------------------------------------------------------------------------------------


def make_forest(params: StackParams) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        min_samples_leaf=params.min_samples_leaf,
        max_samples=params.max_samples,
        random_state=params.seed,
        n_jobs=params.n_jobs,
    )


def tag_ids(tags: Sequence[Sequence[str]]) -> np.ndarray:
    return np.array([TAG_TO_ID[t] for sent in tags for t in sent], dtype=np.int64)


def fit_forest(
    marginals: Marginals, gold: Sequence[Sequence[str]], members: Sequence[str], params: StackParams
) -> RandomForestClassifier:
    """Fit the forest on every character of the given (dev) sentences."""
    features = build_features(marginals, members, params.context)
    return make_forest(params).fit(features, tag_ids(gold))


def predict_stack(
    forest: RandomForestClassifier, marginals: Marginals, members: Sequence[str], context: int, threads: int = 1
) -> list[Prediction]:
    """Stacked predictions from precomputed marginals (members in the order the forest was fit on)."""
    probs = tag_probabilities(forest, build_features(marginals, members, context), threads)
    return decode_probabilities(probs, sentence_lengths(marginals, members))


def cross_validated_predictions(
    marginals: Marginals, gold: Sequence[Sequence[str]], members: Sequence[str], params: StackParams
) -> list[Prediction]:
    """Out-of-fold stacked predictions: each sentence is tagged by a forest that never saw it."""
    features = build_features(marginals, members, params.context)
    lengths = sentence_lengths(marginals, members)
    labels = tag_ids(gold)
    groups = np.repeat(np.arange(len(lengths)), lengths)
    n_folds = min(params.cv_folds, len(lengths))
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 sentences, got {len(lengths)}")
    probs = np.zeros((features.shape[0], N_TAGS), dtype=np.float32)
    for train_idx, test_idx in GroupKFold(n_splits=n_folds).split(features, labels, groups):
        forest = make_forest(params).fit(features[train_idx], labels[train_idx])
        probs[test_idx] = tag_probabilities(forest, features[test_idx])
    return decode_probabilities(probs, lengths)


def subset_predictions(
    dev_marginals: Marginals,
    dev_gold: Sequence[Sequence[str]],
    other_marginals: Marginals,
    members: Sequence[str],
    params: StackParams,
) -> tuple[list[Prediction], list[Prediction]]:
    """For one combination of members: (cross-validated dev predictions, predictions on another split
    by a forest fit on all of dev). Marginals are computed once by the caller and shared by all subsets."""
    dev = cross_validated_predictions(dev_marginals, dev_gold, members, params)
    forest = fit_forest(dev_marginals, dev_gold, members, params)
    return dev, predict_stack(forest, other_marginals, members, params.context)
