"""Batched CRF inference (healthner.model.crf) against pytorch-crf and a brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchcrf import CRF

from healthner.model.crf import CrfScores, crf_marginals, crf_marginals_log, crf_viterbi
from healthner.model.precision import resolve_precision

TAGS = 4


def _batch(seed: int, groups: int = 1, rows: int = 6, length: int = 7):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(groups * rows, length, TAGS, generator=generator) * 3
    lengths = torch.randint(1, length + 1, (groups * rows,), generator=generator)
    mask = torch.arange(length)[None] < lengths[:, None]
    start = torch.randn(groups, TAGS, generator=generator)
    transitions = torch.randn(groups, TAGS, TAGS, generator=generator) * 2
    transitions[:, 0, 3] = -1.0e4  # a forbidden move, as the BIO constraints pin them
    end = torch.randn(groups, TAGS, generator=generator)
    return emissions, mask, CrfScores(start, transitions, end)


def _brute_force(emissions, start, transitions, end) -> tuple[torch.Tensor, list[int]]:
    """Marginals and the best path of one unpadded row by enumerating every path."""
    length = emissions.shape[0]
    weights, best, best_score = torch.zeros(length, TAGS, dtype=torch.float64), None, -float("inf")
    paths = list(itertools.product(range(TAGS), repeat=length))
    scores = []
    for path in paths:
        score = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
        score = score + sum(transitions[a, b] + emissions[t + 1, b] for t, (a, b) in enumerate(itertools.pairwise(path)))
        scores.append(float(score))
        if score > best_score:
            best, best_score = list(path), float(score)
    probs = torch.tensor(scores, dtype=torch.float64).softmax(0)
    for path, p in zip(paths, probs):
        for t, tag in enumerate(path):
            weights[t, tag] += p
    return weights, best


@pytest.mark.parametrize("groups", [1, 3])
def test_marginals_and_viterbi_match_brute_force_per_group(groups: int) -> None:
    emissions, mask, scores = _batch(seed=groups, groups=groups, rows=2, length=5)
    probs = crf_marginals(emissions, mask, scores)
    log_probs = crf_marginals_log(emissions, mask, scores)
    paths = crf_viterbi(emissions, mask, scores)
    rows = emissions.shape[0] // groups
    for row in range(emissions.shape[0]):
        n, g = int(mask[row].sum()), row // rows
        expected, best = _brute_force(emissions[row, :n].double(), *scores.group(g))
        torch.testing.assert_close(probs[row, :n].double(), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(log_probs[row, :n].double(), expected, atol=1e-5, rtol=0)
        assert paths[row, :n].tolist() == best


def test_viterbi_equals_pytorch_crf_with_shared_scores() -> None:
    emissions, mask, *_ = _batch(seed=7, rows=40, length=30)
    crf = CRF(TAGS, batch_first=True)
    with torch.no_grad():
        crf.transitions.normal_(0, 2)
    ours = crf_viterbi(emissions, mask, CrfScores.of(crf))
    reference = crf.decode(emissions, mask=mask)
    assert [ours[row, : len(path)].tolist() for row, path in enumerate(reference)] == reference


def test_marginals_fall_back_to_log_space_where_scaling_underflows(monkeypatch) -> None:
    from healthner.model import crf

    redone = []
    monkeypatch.setattr(crf, "crf_marginals_log", lambda *args: redone.append(args[0].shape[0]) or crf_marginals_log(*args))
    emissions, mask, scores = _batch(seed=11)
    emissions[0] = -3000.0  # row 0 may only be tag 0, then tag 3 at t=2: every path but the forbidden one is ~0
    emissions[0, :, 0] = 0.0
    emissions[0, 2] = -3000.0
    emissions[0, 2, 3] = 0.0
    mask[0] = True
    probs = crf.crf_marginals(emissions, mask, scores)
    assert redone == [1]  # row 0 alone was redone in log space
    assert probs[mask].isfinite().all()
    torch.testing.assert_close(probs[0], crf_marginals_log(emissions, mask, scores)[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(probs[mask].sum(-1), torch.ones(int(mask.sum())), atol=1e-5, rtol=0)


def test_scores_must_split_the_rows_into_equal_groups() -> None:
    emissions, mask, scores = _batch(seed=3, groups=1, rows=5)
    twice = CrfScores(*(s.expand(2, *s.shape[1:]) for s in scores))
    with pytest.raises(ValueError, match="do not split"):
        crf_marginals(emissions, mask, twice)


def test_precision_names_resolve() -> None:
    assert resolve_precision("auto", "cuda") == "bfloat16"
    assert resolve_precision("auto", "cpu") in {"bfloat16", "float32"}
    assert resolve_precision("int8", "cpu") == "int8"
    with pytest.raises(ValueError, match="precision 'half'"):
        resolve_precision("half", "cpu")
