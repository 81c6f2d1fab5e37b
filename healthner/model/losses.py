"""The training objective: CRF NLL + focal loss (or plain cross-entropy) + R-Drop's symmetric KL;
for a student's silver batches with soft targets, the KL to the teacher's per-character probabilities.

Every term is a mean over real characters, so `focal.weight` and `rdrop.alpha` weigh like against
like. Each row of the paper's Table 3 is a params change only:
  softmax + CE       use_crf false, focal off        softmax + focal   use_crf false, focal on
  + BiLSTM           use_bilstm true                 + CRF             use_crf true
  + R-Drop           rdrop on: the batch goes through the model twice in ONE forward (concatenated),
                     the NLL/focal terms average over both copies, plus alpha * sym. KL between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from healthner.corpus.labels import TAG_TO_ID, TAGS
from healthner.model.network import NerTagger, char_mask
from healthner.sections.model import LossParams

DEFAULT_ALPHA = 1.0  # focal weight of a class that a per-tag alpha mapping leaves out


def alpha_vector(alpha: float | dict[str, float], tags: tuple[str, ...] = TAGS) -> torch.Tensor:
    """Per-class focal weights in tag-id order from one number or a tag -> weight mapping."""
    if isinstance(alpha, (int, float)):
        return torch.full((len(tags),), float(alpha))
    unknown = sorted(set(alpha) - set(tags))
    if unknown:
        raise ValueError(f"loss.focal.alpha names unknown tags {unknown}")
    return torch.tensor([float(alpha.get(t, DEFAULT_ALPHA)) for t in tags])


def focal_loss(
    emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, gamma: float, alpha: torch.Tensor
) -> torch.Tensor:
    """-alpha_y (1 - p_y)^gamma log p_y, averaged over real characters (gamma 0, alpha 1: cross-entropy)."""
    log_p = emissions.log_softmax(-1)
    log_p_y = log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    weight = alpha.to(emissions.device)[labels] * (1.0 - log_p_y.exp()).pow(gamma)
    return _masked_mean(-weight * log_p_y, mask)


def cross_entropy(emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked_mean(F.cross_entropy(emissions.transpose(1, 2), labels, reduction="none"), mask)


def symmetric_kl(emissions_a: torch.Tensor, emissions_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) + KL(Q||P) of the per-character softmaxes, averaged over real characters."""
    log_p, log_q = emissions_a.log_softmax(-1), emissions_b.log_softmax(-1)
    per_char = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(-1)
    return _masked_mean(per_char, mask)


def soft_target_loss(emissions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per character, averaged over real characters: `targets` are the teacher's
    per-character tag probabilities (rows sum to 1), the student's are the softmax of its emissions.
    A teacher probability of 0 adds nothing (0 log 0 = 0), so one-hot targets give cross-entropy."""
    log_q = emissions.float().log_softmax(-1)
    targets = targets.to(log_q.dtype)
    per_char = (torch.xlogy(targets, targets) - targets * log_q).sum(-1)
    return _masked_mean(per_char, mask)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass
class LossParts:
    total: torch.Tensor
    crf: float = 0.0
    token: float = 0.0  # focal or cross-entropy
    kl: float = 0.0


class Objective:
    """Computes the configured loss for one batch of windows (input_ids with [CLS]/[SEP], labels per char)."""

    def __init__(self, params: LossParams, use_crf: bool):
        self.params, self.use_crf = params, use_crf
        self.alpha = alpha_vector(params.focal.alpha)

    def __call__(
        self,
        model: NerTagger,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> LossParts:
        rdrop = self.params.rdrop.enabled
        if rdrop:  # one forward over both copies: dropout masks differ, matmuls are shared
            input_ids, attention_mask, labels = (torch.cat([x, x]) for x in (input_ids, attention_mask, labels))
            features = None if features is None else torch.cat([features, features])
        emissions = model(input_ids, attention_mask, features)
        mask = char_mask(attention_mask)
        parts = self._token_terms(model, emissions, labels, mask)
        if rdrop:
            first, second = emissions.chunk(2)
            kl = symmetric_kl(first, second, mask.chunk(2)[0])
            parts.total = parts.total + self.params.rdrop.alpha * kl
            parts.kl = kl.item()
        return parts

    def soft(
        self,
        model: NerTagger,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        targets: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> LossParts:
        """A silver batch with soft targets: the KL to the teacher's probabilities alone (one pass, no
        R-Drop: the teacher's distribution already says how sure a character is)."""
        emissions = model(input_ids, attention_mask, features)
        kl = soft_target_loss(emissions, targets, char_mask(attention_mask))
        return LossParts(kl, kl=kl.item())

    def _token_terms(
        self, model: NerTagger, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> LossParts:
        """CRF NLL and/or focal/CE; both copies of an R-Drop batch hold the same number of characters,
        so one mean over the doubled batch is the average of the two passes' terms."""
        total, parts = emissions.new_zeros(()), LossParts(emissions.new_zeros(()))
        if self.use_crf:
            crf = -model.crf(emissions, labels, mask=mask, reduction="token_mean")
            total, parts.crf = total + crf, crf.item()
        focal = self.params.focal
        if focal.enabled:
            token = focal.weight * focal_loss(emissions, labels, mask, focal.gamma, self.alpha)
        elif not self.use_crf:
            token = cross_entropy(emissions, labels, mask)
        else:
            token = None
        if token is not None:
            total, parts.token = total + token, token.item()
        parts.total = total
        return parts


def window_labels(label_ids: list[int]) -> list[int]:
    """Gold ids for a window's CRF: a window cut inside an entity opens with I-X, which the CRF's
    start constraint forbids, so it is read as B-X (what the window alone can see)."""
    if label_ids and TAGS[label_ids[0]].startswith("I-"):
        return [TAG_TO_ID["B-" + TAGS[label_ids[0]][2:]]] + list(label_ids[1:])
    return list(label_ids)
