"""The shipping rule: which kind of model goes into `models/ensemble/`, decided on dev alone.

Every candidate combiner is scored on dev over all members (a combiner that learns is fit on the
members' cross-fitted train outputs when stack.crossfit is on, else scored out-of-fold on dev; the
mean over `stack.selection_seeds` of fold splits and model seeds); the best member alone is
scored by its own decode (it never saw dev). A combiner ships only if its mean dev F1 beats the best
member's by at least `stack.min_gain`; otherwise the best member ships alone, since a combiner
that does not earn its cost (every member's tagging time) is not worth it.

A student (one member trained on gold and a teacher's silver labels, ensemble/student.py) is a
candidate like a member: the best single model is the one with the best dev F1, the mean over its
seeds (a member has one), and a combiner must beat that by `stack.min_gain` to ship instead.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from healthner.ensemble.kinds import KINDS, FitData, MemberOutputs, fit_elsewhere, out_of_fold
from healthner.model.metrics import score
from healthner.sections.ensemble import StackParams


@dataclass(frozen=True)
class KindScore:
    """Dev F1 of one candidate: each seed's run, their mean and spread (max - min)."""

    runs: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.runs)

    @property
    def spread(self) -> float:
        return max(self.runs) - min(self.runs)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "spread": self.spread, "runs": self.runs}


@dataclass(frozen=True)
class Choice:
    kind: str
    members: list[str]
    dev_f1: float
    best_member: str
    best_member_f1: float
    min_gain: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def member_scores(outputs: MemberOutputs, gold: Sequence[Sequence[str]], members: Sequence[str]) -> dict[str, float]:
    """Each member's dev F1 from its own CRF decode."""
    return {m: score(gold, outputs.paths[m]).f1 for m in members}


def candidate_scores(
    outputs: MemberOutputs, gold: Sequence[Sequence[str]], members: Sequence[str], params: StackParams,
    training: FitData | None = None,
) -> dict[str, KindScore]:
    """Dev F1 of each candidate combiner over all `members`, per seed. A candidate that learns is fit on
    `training` (cross-fitted train outputs) when given, else out-of-fold on dev."""

    def dev_tags(name: str, seed: int) -> list[list[str]]:
        if training is not None and KINDS[name].fitted:
            return fit_elsewhere(name, members, params, training, outputs, seed)
        return out_of_fold(name, members, params, outputs, gold, seed)

    return {
        name: KindScore([score(gold, dev_tags(name, seed)).f1 for seed in params.selection_seeds])
        for name in params.candidates
    }


def choose(
    members_f1: dict[str, float], candidates: dict[str, KindScore], params: StackParams,
    students: Mapping[str, KindScore] | None = None,
) -> Choice:
    """The shipping rule (or the kind params force), with the reason in words. `students`: single models
    beside the members (name -> dev F1 per seed), compared with them by their mean."""
    singles = {**members_f1, **{name: s.mean for name, s in (students or {}).items()}}
    best_member = max(singles, key=singles.__getitem__)
    alone = singles[best_member]
    if params.kind != "auto":
        members = [best_member] if params.kind == "member" else list(params.members)
        f1 = alone if params.kind == "member" else candidates[params.kind].mean
        return Choice(params.kind, members, f1, best_member, alone, params.min_gain, f"stack.kind is {params.kind}")
    if candidates:
        best = max(candidates, key=lambda name: candidates[name].mean)
        gain = candidates[best].mean - alone
        if gain >= params.min_gain:
            why = f"{best} beats {best_member} alone by {gain:+.4f} dev F1 (at least {params.min_gain} needed)"
            return Choice(best, list(params.members), candidates[best].mean, best_member, alone, params.min_gain, why)
        why = (f"no combiner beats {best_member} alone by {params.min_gain} dev F1 "
               f"(best: {best} {candidates[best].mean:.4f} vs {alone:.4f}, {gain:+.4f})")
    else:
        why = "no candidate combiners configured"
    return Choice("member", [best_member], alone, best_member, alone, params.min_gain, why)


def scores_from_record(selection: Mapping) -> tuple[dict[str, float], dict[str, KindScore]]:
    """The members' and candidates' dev F1 back from a `selection_record` (a shipped ensemble.json's `selection`)."""
    candidates = {name: KindScore(list(entry["runs"])) for name, entry in selection.get("candidates_dev_f1", {}).items()}
    return dict(selection["members_dev_f1"]), candidates


def selection_record(
    members_f1: dict[str, float], candidates: dict[str, KindScore], choice: Choice, fit_on: str = "dev"
) -> dict:
    """What ensemble.json keeps of the decision: every score, the choice and what the learned kinds fit on."""
    return {
        "fit_on": fit_on,
        "members_dev_f1": members_f1,
        "candidates_dev_f1": {name: s.as_dict() for name, s in candidates.items()},
        "chosen": choice.as_dict(),
    }
