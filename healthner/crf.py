"""Batched linear-chain CRF inference over right-padded batches: marginals and Viterbi paths.

Scores are shared by every row ((T,) start and end, (T, T) transitions) or given per group
((G, T), (G, T, T)): the B rows then come in G equal consecutive blocks, block g scored by group
g. So the members of an ensemble run side by side in one batch, and the per-position loop, a
Python loop of small tensor ops, is paid once per batch instead of once per member. Positions at
or past a row's length leave its state untouched.
"""

from __future__ import annotations

import torch


def crf_marginals(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """P(tag at each position | row): emissions (B, L, T), mask (B, L) with mask[:, 0] set, scores as in
    the module docstring. Returns float32 (B, L, T); padded positions hold meaningless rows.

    A scaled forward-backward: scores are exponentiated once and every step is rescaled to sum to one,
    so a step is a (grouped) matrix product instead of a log-sum-exp over (B, T, T). A position's
    marginal is its alpha times its beta normalised over tags, so the scales (and the partition
    function) cancel. It runs in float64; a row whose every path still underflows is redone by
    `crf_marginals_log`.
    """
    batch, length, _ = emissions.shape
    mask = mask.bool()
    groups = _groups(start, transitions, end, batch)
    steps = _exp_rescaled(emissions.double(), dims=(-1,))  # (B, L, T)
    moves = _exp_rescaled(_grouped(transitions.double(), 2), dims=(-2, -1))  # (G, T, T)

    def ahead(alpha: torch.Tensor) -> torch.Tensor:  # sum_i alpha[b, i] * moves[g(b), i, j]
        return torch.bmm(alpha.view(groups, batch // groups, -1), moves).view(batch, -1)

    def behind(beta: torch.Tensor) -> torch.Tensor:  # sum_j moves[g(b), i, j] * beta[b, j]
        return torch.bmm(beta.view(groups, batch // groups, -1), moves.transpose(1, 2)).view(batch, -1)

    first = _exp_rescaled(_per_row(start.double(), 1, batch), dims=(-1,))
    alphas = [_normalised(first * steps[:, 0])]
    for t in range(1, length):
        step = _normalised(ahead(alphas[-1]) * steps[:, t])
        alphas.append(torch.where(mask[:, t : t + 1], step, alphas[-1]))
    last = _normalised(_exp_rescaled(_per_row(end.double(), 1, batch), dims=(-1,)))
    betas = [last]
    for t in range(length - 2, -1, -1):
        step = _normalised(behind(steps[:, t + 1] * betas[-1]))
        betas.append(torch.where(mask[:, t + 1 : t + 2], step, last))
    probs = _normalised(torch.stack(alphas, 1) * torch.stack(betas[::-1], 1))
    for row in (~probs.isfinite().all(dim=2).all(dim=1)).nonzero().flatten().tolist():
        group = row // (batch // groups)
        scores = [_grouped(x, n)[group] for x, n in ((start, 1), (transitions, 2), (end, 1))]
        probs[row] = crf_marginals_log(emissions[row : row + 1], mask[row : row + 1], *scores)[0].double()
    return probs.float()


def crf_marginals_log(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """`crf_marginals` in log space: slower (a log-sum-exp per step), never underflows."""
    batch, length, _ = emissions.shape
    mask = mask.bool()
    _groups(start, transitions, end, batch)
    emissions = emissions.double()
    start, end = (_per_row(x.double(), 1, batch) for x in (start, end))
    transitions = _per_row(transitions.double(), 2, batch)
    alphas = [start + emissions[:, 0]]
    for t in range(1, length):
        step = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alphas.append(torch.where(mask[:, t : t + 1], step, alphas[-1]))
    betas = [end]
    for t in range(length - 2, -1, -1):
        step = torch.logsumexp(transitions + (emissions[:, t + 1] + betas[-1]).unsqueeze(1), dim=2)
        betas.append(torch.where(mask[:, t + 1 : t + 2], step, end))
    return (torch.stack(alphas, 1) + torch.stack(betas[::-1], 1)).softmax(-1).float()


def crf_viterbi(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """Best tag ids (B, L), shapes as in `crf_marginals`; scores may be -inf for moves never allowed, as
    long as every row keeps one allowed path. Past a row's length its ids repeat its last real tag. Ties
    go to the lower tag id, as in pytorch-crf's decode.

    The back-pointers are followed for all rows at once (past a row's end each tag points at itself),
    where pytorch-crf walks each row back in a Python loop.
    """
    batch, length, tags = emissions.shape
    mask = mask.bool()
    _groups(start, transitions, end, batch)
    start, end = (_per_row(x.to(emissions.dtype), 1, batch) for x in (start, end))
    transitions = _per_row(transitions.to(emissions.dtype), 2, batch)
    score = start + emissions[:, 0]
    itself = torch.arange(tags, device=emissions.device).expand(batch, tags)
    pointers = []
    for t in range(1, length):
        best, source = (score.unsqueeze(2) + transitions).max(dim=1)
        real = mask[:, t : t + 1]
        pointers.append(torch.where(real, source, itself))
        score = torch.where(real, best + emissions[:, t], score)
    path = [(score + end).argmax(dim=1)]
    for source in reversed(pointers):
        path.append(source.gather(1, path[-1].unsqueeze(1)).squeeze(1))
    return torch.stack(path[::-1], dim=1)


def _groups(start: torch.Tensor, transitions: torch.Tensor, end: torch.Tensor, batch: int) -> int:
    """The number of score groups, checked to agree and to split the rows evenly."""
    counts = {_grouped(start, 1).shape[0], _grouped(transitions, 2).shape[0], _grouped(end, 1).shape[0]}
    if len(counts) != 1 or batch % next(iter(counts)):
        raise ValueError(f"score groups {sorted(counts)} do not split {batch} rows evenly")
    return counts.pop()


def _grouped(scores: torch.Tensor, ndim: int) -> torch.Tensor:
    """Scores with a leading group dimension: shared scores (`ndim` dims) become one group."""
    return scores.unsqueeze(0) if scores.dim() == ndim else scores


def _per_row(scores: torch.Tensor, ndim: int, batch: int) -> torch.Tensor:
    """Shared or per-group scores repeated for each row of its group: (B, *scores of one group)."""
    grouped = _grouped(scores, ndim)
    return grouped.repeat_interleave(batch // grouped.shape[0], dim=0)


def _exp_rescaled(scores: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """exp(scores - max over dims): the largest is 1, so nothing overflows."""
    return (scores - scores.amax(dim=dims, keepdim=True)).exp()


def _normalised(values: torch.Tensor) -> torch.Tensor:
    return values / values.sum(-1, keepdim=True)
