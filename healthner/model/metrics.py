"""Entity-level precision, recall and F1, counted exactly as conlleval counts them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from healthner.corpus.labels import ENTITY_TYPES, spans


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    support: int  # gold entities


def _prf(correct: int, predicted: int, gold: int) -> PRF:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return PRF(p, r, f, gold)


@dataclass(frozen=True)
class Scores:
    overall: PRF
    per_type: dict[str, PRF] = field(default_factory=dict)

    @property
    def f1(self) -> float:
        return self.overall.f1

    def as_dict(self) -> dict:
        row = lambda s: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
        return {
            "precision": self.overall.precision,
            "recall": self.overall.recall,
            "f1": self.overall.f1,
            "per_type": {t: row(s) for t, s in self.per_type.items()},
        }


def score(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Scores:
    """Micro scores over all sentences and per type; an entity counts only if type and both ends match."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    correct, n_pred, n_gold = Counter(), Counter(), Counter()
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gold_spans, pred_spans = set(spans(g)), set(spans(p))
        n_gold.update(s.type for s in gold_spans)
        n_pred.update(s.type for s in pred_spans)
        correct.update(s.type for s in gold_spans & pred_spans)
    types = [t for t in ENTITY_TYPES if n_gold[t] or n_pred[t]]
    types += sorted(t for t in set(n_gold) | set(n_pred) if t not in ENTITY_TYPES)
    per_type = {t: _prf(correct[t], n_pred[t], n_gold[t]) for t in types}
    overall = _prf(sum(correct.values()), sum(n_pred.values()), sum(n_gold.values()))
    return Scores(overall, per_type)
