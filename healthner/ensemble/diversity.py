"""How differently the members err: what a combiner can fix is where they disagree.

For every pair of members, on one split, per character: disagreement (their Viterbi tags differ),
and error overlap (of the characters either one gets wrong, the share both get wrong: 1 means
their errors coincide, 0 that they never err together). Entity-level too: of the gold entities
either member misses, the share both miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from healthner.corpus.labels import spans
from healthner.ensemble.kinds import MemberOutputs


def _flat(tags: Sequence[Sequence[str]]) -> np.ndarray:
    return np.array([t for sentence in tags for t in sentence], dtype=object)


def _missed(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> set[tuple[int, object]]:
    return {(i, s) for i, (g, p) in enumerate(zip(gold, predicted)) for s in set(spans(g)) - set(spans(p))}


def pair_diversity(
    gold: Sequence[Sequence[str]], a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Disagreement and error overlap of two members' tags against gold."""
    truth, first, second = _flat(gold), _flat(a), _flat(b)
    wrong_a, wrong_b = first != truth, second != truth
    either, missed_a, missed_b = wrong_a | wrong_b, _missed(gold, a), _missed(gold, b)
    return {
        "disagreement": float(np.mean(first != second)) if truth.size else 0.0,
        "error_overlap": float((wrong_a & wrong_b).sum() / either.sum()) if either.any() else 1.0,
        "missed_entity_overlap": len(missed_a & missed_b) / len(missed_a | missed_b) if missed_a | missed_b else 1.0,
    }


def diversity(outputs: MemberOutputs, gold: Sequence[Sequence[str]], members: Sequence[str]) -> list[dict]:
    """One row per pair of members."""
    return [
        {"a": a, "b": b, **pair_diversity(gold, outputs.paths[a], outputs.paths[b])} for a, b in combinations(members, 2)
    ]


def diversity_markdown(rows: Sequence[dict], split: str) -> str:
    lines = [
        f"# How differently the members err ({split} split)",
        "",
        "Per pair of members: the share of characters where their Viterbi tags differ (disagreement); of the",
        "characters either one tags wrong, the share both tag wrong (error overlap); of the gold entities",
        "either misses, the share both miss. Overlap near 1: a combiner has nothing to fix.",
        "",
        "| members | disagreement | error overlap | missed-entity overlap |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['a']} + {r['b']} | {r['disagreement']:.4f} | {r['error_overlap']:.3f} "
            f"| {r['missed_entity_overlap']:.3f} |"
        )
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("disagreement", "error_overlap", "missed_entity_overlap")}
        lines.append(
            f"| mean | {mean['disagreement']:.4f} | {mean['error_overlap']:.3f} | {mean['missed_entity_overlap']:.3f} |"
        )
    return "\n".join(lines) + "\n"
