"""Batched linear-chain CRF inference over right-padded batches: marginals and Viterbi paths.

`CrfScores` are shared by every row ((T,) start and end, (T, T) transitions) or given per group
((G, T), (G, T, T)): the B rows then come in G equal consecutive blocks, block g scored by group
g. So the members of an ensemble run side by side in one batch, and the per-position loop, a
Python loop of small tensor ops, is paid once per batch instead of once per member. Positions at
or past a row's length leave its state untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

Step = Callable[[torch.Tensor, int], torch.Tensor]


class CrfScores(NamedTuple):
    start: torch.Tensor
    transitions: torch.Tensor
    end: torch.Tensor

    @classmethod
    def of(cls, crf) -> CrfScores:
        """The scores of a pytorch-crf `CRF` module."""
        return cls(crf.start_transitions, crf.transitions, crf.end_transitions)

    @property
    def grouped(self) -> CrfScores:
        """With a leading group dimension: shared scores become one group."""
        start, transitions, end = self
        return CrfScores(
            start.unsqueeze(0) if start.dim() == 1 else start,
            transitions.unsqueeze(0) if transitions.dim() == 2 else transitions,
            end.unsqueeze(0) if end.dim() == 1 else end,
        )

    def groups(self, batch: int) -> int:
        """The number of groups, checked to agree and to split `batch` rows evenly."""
        counts = {scores.shape[0] for scores in self.grouped}
        if len(counts) != 1 or batch % next(iter(counts)):
            raise ValueError(f"score groups {sorted(counts)} do not split {batch} rows evenly")
        return counts.pop()

    def per_row(self, batch: int, dtype: torch.dtype) -> CrfScores:
        """Each row's own scores, (B, T), (B, T, T), (B, T), in `dtype`."""
        repeats = batch // self.groups(batch)
        return CrfScores(*(scores.to(dtype).repeat_interleave(repeats, dim=0) for scores in self.grouped))

    def group(self, index: int) -> CrfScores:
        return CrfScores(*(scores[index] for scores in self.grouped))


def crf_marginals(emissions: torch.Tensor, mask: torch.Tensor, scores: CrfScores) -> torch.Tensor:
    """P(tag at each position | row): emissions (B, L, T), mask (B, L) with mask[:, 0] set. Returns float32
    (B, L, T); padded positions hold meaningless rows.

    A scaled forward-backward: scores are exponentiated once and every step is rescaled to sum to one,
    so a step is a (grouped) matrix product instead of a log-sum-exp over (B, T, T). A position's
    marginal is its alpha times its beta normalised over tags, so the scales (and the partition
    function) cancel. It runs in float64; a row whose every path still underflows is redone by
    `crf_marginals_log`.
    """
    batch, mask = emissions.shape[0], mask.bool()
    groups, rows = scores.groups(batch), scores.per_row(batch, torch.float64)
    steps = _exp_rescaled(emissions.double(), dims=(-1,))  # (B, L, T)
    moves = _exp_rescaled(scores.grouped.transitions.double(), dims=(-2, -1))  # (G, T, T)

    def ahead(alpha: torch.Tensor, t: int) -> torch.Tensor:  # sum_i alpha[b, i] moves[g(b), i, j], times step t
        moved = torch.bmm(alpha.view(groups, batch // groups, -1), moves).view(batch, -1)
        return _normalised(moved * steps[:, t])

    def behind(beta: torch.Tensor, t: int) -> torch.Tensor:  # sum_j moves[g(b), i, j] step[t + 1, j] beta[b, j]
        weighted = (steps[:, t + 1] * beta).view(groups, batch // groups, -1)
        return _normalised(torch.bmm(weighted, moves.transpose(1, 2)).view(batch, -1))

    first = _normalised(_exp_rescaled(rows.start, dims=(-1,)) * steps[:, 0])
    last = _normalised(_exp_rescaled(rows.end, dims=(-1,)))
    alphas, betas = _forward_backward(mask, first, last, ahead, behind)
    probs = _normalised(alphas * betas)
    for row in (~probs.isfinite().all(dim=2).all(dim=1)).nonzero().flatten().tolist():
        own = scores.group(row // (batch // groups))
        probs[row] = crf_marginals_log(emissions[row : row + 1], mask[row : row + 1], own)[0].double()
    return probs.float()


def crf_marginals_log(emissions: torch.Tensor, mask: torch.Tensor, scores: CrfScores) -> torch.Tensor:
    """`crf_marginals` in log space: slower (a log-sum-exp per step), never underflows."""
    emissions, mask = emissions.double(), mask.bool()
    rows = scores.per_row(emissions.shape[0], torch.float64)

    def ahead(alpha: torch.Tensor, t: int) -> torch.Tensor:
        return torch.logsumexp(alpha.unsqueeze(2) + rows.transitions, dim=1) + emissions[:, t]

    def behind(beta: torch.Tensor, t: int) -> torch.Tensor:
        return torch.logsumexp(rows.transitions + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)

    alphas, betas = _forward_backward(mask, rows.start + emissions[:, 0], rows.end, ahead, behind)
    return (alphas + betas).softmax(-1).float()


def crf_viterbi(emissions: torch.Tensor, mask: torch.Tensor, scores: CrfScores) -> torch.Tensor:
    """Best tag ids (B, L); scores may be -inf for moves never allowed, as long as every row keeps one
    allowed path. Past a row's length its ids repeat its last real tag. Ties go to the lower tag id,
    as in pytorch-crf's decode.

    The back-pointers are followed for all rows at once (past a row's end each tag points at itself),
    where pytorch-crf walks each row back in a Python loop.
    """
    batch, length, tags = emissions.shape
    mask, rows = mask.bool(), scores.per_row(batch, emissions.dtype)
    score = rows.start + emissions[:, 0]
    itself = torch.arange(tags, device=emissions.device).expand(batch, tags)
    pointers = []
    for t in range(1, length):
        best, source = (score.unsqueeze(2) + rows.transitions).max(dim=1)
        real = mask[:, t : t + 1]
        pointers.append(torch.where(real, source, itself))
        score = torch.where(real, best + emissions[:, t], score)
    path = [(score + rows.end).argmax(dim=1)]
    for source in reversed(pointers):
        path.append(source.gather(1, path[-1].unsqueeze(1)).squeeze(1))
    return torch.stack(path[::-1], dim=1)


def _forward_backward(
    mask: torch.Tensor, first: torch.Tensor, last: torch.Tensor, ahead: Step, behind: Step
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alphas and betas (B, L, T) of a masked forward-backward: `ahead(alpha, t)` gives position t from
    t - 1, `behind(beta, t)` position t from t + 1. Past a row's end its alpha stays put and its beta
    is `last`, so each row's own last position gets `last`."""
    length = mask.shape[1]
    alphas = [first]
    for t in range(1, length):
        alphas.append(torch.where(mask[:, t : t + 1], ahead(alphas[-1], t), alphas[-1]))
    betas = [last]
    for t in range(length - 2, -1, -1):
        betas.append(torch.where(mask[:, t + 1 : t + 2], behind(betas[-1], t), last))
    return torch.stack(alphas, 1), torch.stack(betas[::-1], 1)


def _exp_rescaled(scores: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """exp(scores - max over dims): the largest is 1, so nothing overflows."""
    return (scores - scores.amax(dim=dims, keepdim=True)).exp()


def _normalised(values: torch.Tensor) -> torch.Tensor:
    return values / values.sum(-1, keepdim=True)
