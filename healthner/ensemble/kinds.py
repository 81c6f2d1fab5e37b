"""The kinds of model that can ship in `models/ensemble/`: one member alone, or a combiner over members.

Every kind reads the same `MemberOutputs` (each member's CRF marginals and Viterbi tags, and the
CRF over the members' mean emissions when a kind needs it) and returns one `Prediction` per
sentence in valid BIO. A kind that learns from the dev split (`fitted`) is scored out-of-fold;
the others have nothing to fit, so their dev scores are honest as they are.

- member: the member's own CRF decode (what a single model does);
- forest: the paper's random forest over marginals (+ Viterbi one-hot tags), BIO-Viterbi decoded;
- logistic: multinomial logistic regression over the same features, decoded the same way;
- vote: entity-level voting, a span kept when at least `min_votes` members predict it;
- mean_emissions: one CRF over the members' mean emissions and mean transition scores, strict BIO.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from healthner.config import describe_errors
from healthner.corpus.labels import OUTSIDE, TAG_TO_ID, Span, spans
from healthner.ensemble.combiner import (
    N_TAGS,
    Prediction,
    build_features,
    decode_probabilities,
    fit_forest,
    forest_inputs,
    n_features,
    predict_stack,
    sentence_lengths,
    tag_ids,
)
from healthner.errors import ModelIntegrityError
from healthner.sections.ensemble import StackParams

FOREST_FILE = "forest.skops"
LOGISTIC_FILE = "logistic.skops"

SavedFiles = Mapping[str, bytes] | None  # a kind's saved files by name, as hashed (None: read them from the folder)

# Written out by hand, never computed from the file: these are the only types a .skops file may hold
# beyond skops' own defaults (builtins, numpy arrays and dtypes).
TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    FOREST_FILE: (
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    ),
    LOGISTIC_FILE: ("sklearn.linear_model._logistic.LogisticRegression",),
}


@dataclass
class MemberOutputs:
    """What the members say about a list of sentences, computed once and read by every kind."""

    marginals: dict[str, list[np.ndarray]]  # member -> (n_chars, 21) per sentence
    paths: dict[str, list[list[str]]]  # member -> its CRF Viterbi tags per sentence
    averaged: tuple[list[np.ndarray], list[list[str]]] | None = None  # mean-emission CRF (marginals, tags)

    def subset(self, rows: Sequence[int]) -> MemberOutputs:
        pick = lambda values: [values[k] for k in rows]
        averaged = None if self.averaged is None else (pick(self.averaged[0]), pick(self.averaged[1]))
        return MemberOutputs(
            {m: pick(v) for m, v in self.marginals.items()}, {m: pick(v) for m, v in self.paths.items()}, averaged
        )

    @property
    def n_sentences(self) -> int:
        return len(next(iter(self.paths.values())))

    @classmethod
    def concat(cls, parts: Sequence[MemberOutputs]) -> MemberOutputs:
        """The sentences of every part, in order (the mean-emission CRF's only when every part has it)."""

        def join(rows_of: Callable[[MemberOutputs], list]) -> list:
            return [row for part in parts for row in rows_of(part)]

        members = list(parts[0].paths)
        averaged = None
        if all(part.averaged is not None for part in parts):
            averaged = (join(lambda p: p.averaged[0]), join(lambda p: p.averaged[1]))
        marginals = {m: join(lambda p, m=m: p.marginals[m]) for m in members}
        return cls(marginals, {m: join(lambda p, m=m: p.paths[m]) for m in members}, averaged)


FitData = tuple[MemberOutputs, Sequence[Sequence[str]]]  # member outputs and the gold tags of their sentences


class ShippedKind(ABC):
    """One kind of shipped model: fit on dev (if it learns), predict, and save into / load from the folder."""

    name: ClassVar[str]
    fitted: ClassVar[bool] = False  # learns from dev, so its dev F1 must be out-of-fold
    needs_averaged: ClassVar[bool] = False  # reads the mean-emission CRF's outputs
    manifest_fields: ClassVar[tuple[str, ...]] = ()  # what `save` returns: part of model_version

    @classmethod
    def files(cls) -> tuple[str, ...]:
        """The files `save` writes into the folder: part of model_version."""
        return ()

    def __init__(self, members: Sequence[str]) -> None:
        self.members = list(members)

    def fit(self, outputs: MemberOutputs, gold: Sequence[Sequence[str]]) -> ShippedKind:
        return self

    @abstractmethod
    def predict(self, outputs: MemberOutputs) -> list[Prediction]: ...

    def save(self, folder: Path) -> dict:
        """Write what the kind learned into `folder`; returns its manifest fields."""
        return {}

    @classmethod
    def load(cls, folder: Path, members: Sequence[str], fields: Mapping, files: SavedFiles = None) -> ShippedKind:
        """The kind as saved: its manifest `fields` and its `files` (relative path -> bytes, as hashed;
        None: read from `folder`)."""
        return cls(members)


def mean_marginals(outputs: MemberOutputs, members: Sequence[str]) -> list[np.ndarray]:
    return [np.mean(rows, axis=0) for rows in zip(*(outputs.marginals[m] for m in members))]


class MemberKind(ShippedKind):
    """One member alone: its own CRF decode, its marginals as the confidence."""

    name = "member"

    def predict(self, outputs: MemberOutputs) -> list[Prediction]:
        (member,) = self.members
        return [Prediction(list(t), p) for t, p in zip(outputs.paths[member], outputs.marginals[member], strict=True)]


class MeanEmissionKind(ShippedKind):
    """The members' emissions averaged under one CRF (their mean transition scores, strict BIO)."""

    name = "mean_emissions"
    needs_averaged = True

    def predict(self, outputs: MemberOutputs) -> list[Prediction]:
        if outputs.averaged is None:
            raise ValueError("mean_emissions needs the members' mean-emission CRF outputs")
        marginals, tags = outputs.averaged
        return [Prediction(list(t), p) for t, p in zip(tags, marginals, strict=True)]


class VoteKind(ShippedKind):
    """Entity-level voting: a span is kept when `min_votes` members predict exactly it; overlapping
    kept spans are resolved by votes, then by the members' mean marginal probability."""

    name = "vote"
    fitted = True
    manifest_fields = ("min_votes",)

    def __init__(self, members: Sequence[str], min_votes: int | None = None) -> None:
        super().__init__(members)
        self.min_votes = min_votes

    def fit(self, outputs: MemberOutputs, gold: Sequence[Sequence[str]]) -> VoteKind:
        from healthner.model.metrics import score

        options = range(1, len(self.members) + 1)
        f1 = {k: score(gold, [p.tags for p in VoteKind(self.members, k).predict(outputs)]).f1 for k in options}
        self.min_votes = max(options, key=lambda k: (f1[k], k))  # ties: the stricter vote
        return self

    def predict(self, outputs: MemberOutputs) -> list[Prediction]:
        if self.min_votes is None:
            raise ValueError("vote: fit (or load) it first to set min_votes")
        probs = mean_marginals(outputs, self.members)
        paths = [[outputs.paths[m][i] for m in self.members] for i in range(outputs.n_sentences)]
        return [Prediction(voted_tags(member_tags, p, self.min_votes), p) for member_tags, p in zip(paths, probs)]

    def save(self, folder: Path) -> dict:
        return {"min_votes": self.min_votes}

    @classmethod
    def load(cls, folder: Path, members: Sequence[str], fields: Mapping, files: SavedFiles = None) -> VoteKind:
        votes = fields.get("min_votes")
        if isinstance(votes, bool) or not isinstance(votes, int) or not 1 <= votes <= len(members):
            raise ModelIntegrityError(f"{folder}: min_votes {votes!r} is not a whole number from 1 to {len(members)}")
        return cls(members, votes)


def voted_tags(member_tags: Sequence[Sequence[str]], probs: np.ndarray, min_votes: int) -> list[str]:
    """BIO tags of the spans at least `min_votes` members predict, without overlaps."""
    votes = Counter(span for tags in member_tags for span in set(spans(tags)))
    confidence = lambda s: float(probs[np.arange(s.start, s.end), _span_tag_ids(s)].mean())
    ranked = sorted((s for s, n in votes.items() if n >= min_votes), key=lambda s: (-votes[s], -confidence(s), s.start))
    out, taken = [OUTSIDE] * probs.shape[0], np.zeros(probs.shape[0], dtype=bool)
    for span in ranked:
        if not taken[span.start : span.end].any():
            taken[span.start : span.end] = True
            out[span.start : span.end] = [f"B-{span.type}"] + [f"I-{span.type}"] * (span.end - span.start - 1)
    return out


def _span_tag_ids(span: Span) -> list[int]:
    return [TAG_TO_ID[f"B-{span.type}"]] + [TAG_TO_ID[f"I-{span.type}"]] * (span.end - span.start - 1)


class _FeatureKind(ShippedKind):
    """A classifier over each character's member features (combiner.py), BIO-Viterbi decoded."""

    fitted = True
    file: ClassVar[str]
    manifest_fields = ("context", "viterbi_features")

    @classmethod
    def files(cls) -> tuple[str, ...]:
        return (cls.file,)

    def __init__(self, members: Sequence[str], params: StackParams, model=None, context: int | None = None,
                 viterbi_features: bool | None = None) -> None:
        super().__init__(members)
        self.params, self.model = params, model
        self.context = params.context if context is None else context
        self.viterbi_features = params.viterbi_features if viterbi_features is None else viterbi_features

    def inputs(self, outputs: MemberOutputs) -> tuple[dict, list[str]]:
        return forest_inputs(outputs.marginals, outputs.paths, self.members, self.viterbi_features)

    def save(self, folder: Path) -> dict:
        sio.dump(self.model, folder / self.file)
        return {"context": self.context, "viterbi_features": self.viterbi_features}

    @classmethod
    def load(cls, folder: Path, members: Sequence[str], fields: Mapping, files: SavedFiles = None) -> _FeatureKind:
        """The saved classifier, checked to take exactly the features its manifest fields make
        (the forest's trees are walked directly when tagging, past scikit-learn's own check)."""
        try:
            params = StackParams(context=fields.get("context"), viterbi_features=fields.get("viterbi_features"))
        except ValueError as exc:
            raise ModelIntegrityError(f"{folder}: {describe_errors(exc)}") from exc
        model = load_trusted(folder / cls.file, None if files is None else files.get(cls.file))
        inputs = len(members) * (2 if params.viterbi_features else 1)
        expected = n_features(inputs, params.context)
        if model.n_features_in_ != expected:
            raise ModelIntegrityError(
                f"{folder / cls.file}: takes {model.n_features_in_} features, the manifest implies {expected}"
            )
        return cls(members, params, model)


class ForestKind(_FeatureKind):
    """The paper's stacker: a random forest over the members' marginals (and Viterbi tags)."""

    name = "forest"
    file = FOREST_FILE

    def fit(self, outputs: MemberOutputs, gold: Sequence[Sequence[str]]) -> ForestKind:
        inputs, order = self.inputs(outputs)
        self.model = fit_forest(inputs, gold, order, self.params.model_copy(update={"context": self.context}))
        return self

    def predict(self, outputs: MemberOutputs) -> list[Prediction]:
        inputs, order = self.inputs(outputs)
        return predict_stack(self.model, inputs, order, self.context, forest_threads())


class LogisticKind(_FeatureKind):
    """Multinomial logistic regression over the forest's features: a smooth, low-variance combiner."""

    name = "logistic"
    file = LOGISTIC_FILE

    def fit(self, outputs: MemberOutputs, gold: Sequence[Sequence[str]]) -> LogisticKind:
        inputs, order = self.inputs(outputs)
        features = build_features(inputs, order, self.context)
        self.model = LogisticRegression(C=self.params.logistic_c, max_iter=self.params.logistic_max_iter)
        self.model.fit(features, tag_ids(gold))
        return self

    def predict(self, outputs: MemberOutputs) -> list[Prediction]:
        inputs, order = self.inputs(outputs)
        features = build_features(inputs, order, self.context)
        probs = np.zeros((features.shape[0], N_TAGS), dtype=np.float32)
        if features.shape[0]:
            probs[:, np.asarray(self.model.classes_, dtype=np.int64)] = self.model.predict_proba(features)
        return decode_probabilities(probs, sentence_lengths(inputs, order))


KINDS: dict[str, type[ShippedKind]] = {
    kind.name: kind for kind in (MemberKind, ForestKind, LogisticKind, VoteKind, MeanEmissionKind)
}


def make_kind(name: str, members: Sequence[str], params: StackParams) -> ShippedKind:
    """An unfitted kind over `members` with the stack's settings."""
    if name not in KINDS:
        raise ValueError(f"unknown kind {name!r}; expected one of {sorted(KINDS)}")
    kind = KINDS[name]
    return kind(members, params) if issubclass(kind, _FeatureKind) else kind(members)


def load_trusted(path: Path, data: bytes | None = None):
    """A .skops file (its bytes `data`, else read from `path`) loaded with its hand-written trust list;
    anything else in it is refused by skops."""
    if data is None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found")
        data = path.read_bytes()
    try:
        model = sio.loads(data, trusted=list(TRUSTED_TYPES[path.name]))
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise ModelIntegrityError(f"{path}: refused, it holds types outside the trust list: {exc}") from exc
    expected = {FOREST_FILE: RandomForestClassifier, LOGISTIC_FILE: LogisticRegression}[path.name]
    if not isinstance(model, expected):
        raise ModelIntegrityError(f"{path}: expected a {expected.__name__}, found {type(model).__name__}")
    return model


def out_of_fold(
    name: str, members: Sequence[str], params: StackParams, outputs: MemberOutputs, gold: Sequence[Sequence[str]], seed: int
) -> list[list[str]]:
    """Dev tags of a kind: out-of-fold by sentence (seeded folds and model seed) when it learns, as is when not."""
    if not KINDS[name].fitted:
        return [p.tags for p in make_kind(name, members, params).predict(outputs)]
    n = outputs.n_sentences
    folds = np.array_split(np.random.default_rng(seed).permutation(n), min(params.cv_folds, n))
    seeded = params.model_copy(update={"seed": seed})
    tags: list[list[str]] = [[] for _ in range(n)]
    for fold in folds:
        rest = np.setdiff1d(np.arange(n), fold)
        kind = make_kind(name, members, seeded).fit(outputs.subset(rest), [gold[k] for k in rest])
        for k, prediction in zip(fold, kind.predict(outputs.subset(fold)), strict=True):
            tags[k] = prediction.tags
    return tags


def fit_elsewhere(
    name: str, members: Sequence[str], params: StackParams, fit_on: FitData, outputs: MemberOutputs, seed: int,
) -> list[list[str]]:
    """Tags of a kind fit on other sentences (`fit_on`: cross-fitted train outputs and their gold tags),
    so every sentence of `outputs` is held out from it."""
    kind = make_kind(name, members, params.model_copy(update={"seed": seed})).fit(*fit_on)
    return [p.tags for p in kind.predict(outputs)]


def forest_threads() -> int:
    """Threads for the forest when tagging: as many as torch uses in this process (tag.torch_threads),
    so parallel tagging processes that each take their share of the cores keep to it."""
    import torch

    return torch.get_num_threads()
