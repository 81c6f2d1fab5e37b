"""stack: choose and fit what ships in `models/ensemble/` (the paper's section 2.2 stacker, if it earns it).

The members were fit on train, so their dev outputs are honest. Every candidate combiner is scored
on dev (out-of-fold on dev, or fit on the members' cross-fitted train outputs when stack.crossfit is
on: crossfit.py), the shipping rule (shipping.py) picks a combiner or the best member alone, and the
chosen kind is fit on all of dev (plus the cross-fitted train outputs) and written, with its members,
as the self-contained `models/ensemble/` folder (shipped.py). The decision and every score go into
its ensemble.json.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.ensemble.crossfit import TRAIN_SPLIT, fold_params, read_folds
from healthner.ensemble.kinds import KINDS, FitData, MemberOutputs, make_kind
from healthner.ensemble.shipped import member_outputs, save_ensemble
from healthner.ensemble.shipping import candidate_scores, choose, member_scores, selection_record
from healthner.model.devices import tag_device

if TYPE_CHECKING:
    from healthner.model.predict import SlotPredictor

DEV_SPLIT = "dev.parquet"
STACK_PHASES = ("members' outputs", "candidates", "fit and save")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackResult:
    output_dir: Path
    kind: str
    members: list[str]
    reason: str
    dev_sentences: int
    dev_characters: int
    model_version: str

    def __str__(self) -> str:
        return (
            f"ships {self.kind} of {', '.join(self.members)} ({self.reason}); chosen on {self.dev_sentences} dev "
            f"sentences ({self.dev_characters} chars) -> {self.output_dir} (model_version {self.model_version})"
        )


def load_predictors(params: Params, members: Sequence[str]) -> dict[str, SlotPredictor]:
    """The trained base models, from train.output_dir/<slot>/ (models/<slot>/)."""
    from healthner.model.predict import SlotPredictor

    device = tag_device(params.tag)
    batches = params.tag.batches_for(device)
    return {slot: SlotPredictor.load(params.train.output_dir / slot, device=device, **batches) for slot in members}


def crossfit_outputs(params: Params, members: Sequence[str], averaged: bool) -> FitData:
    """Every train sentence's member outputs from the fold members that never saw it, with its gold tags."""
    train = {s.sent_id: s for s in read_sentences(params.prepare.output_dir / TRAIN_SPLIT)}
    parts, gold = [], []
    for k, sent_ids in enumerate(tqdm(read_folds(params), desc="cross-fitted outputs", unit="fold", disable=None)):
        sentences = [train[i] for i in sent_ids]
        predictors = load_predictors(fold_params(params, k), members)
        parts.append(member_outputs(predictors, [s.chars for s in sentences], averaged))
        gold += [s.tags for s in sentences]
    return MemberOutputs.concat(parts), gold


def fit_data(
    params: Params, members: Sequence[str], dev: MemberOutputs, dev_gold: Sequence[Sequence[str]]
) -> tuple[FitData | None, FitData]:
    """(the cross-fitted train outputs, or None when stack.crossfit is off; what a shipped kind is fit on:
    those plus dev, or dev alone)."""
    if not params.stack.crossfit.folds:
        return None, (dev, dev_gold)
    training = crossfit_outputs(params, members, needs_averaged(params))
    return training, (MemberOutputs.concat([training[0], dev]), [*training[1], *dev_gold])


def fit_on_words(params: Params) -> str:
    folds = params.stack.crossfit.folds
    return f"train cross-fitted over {folds} folds, plus dev" if folds else "dev"


def needs_averaged(params: Params) -> bool:
    """Whether any candidate (or the forced kind) reads the mean-emission CRF."""
    names = [*params.stack.candidates, params.stack.kind]
    return any(name in KINDS and KINDS[name].needs_averaged for name in names)


def fit_stack(params: Params) -> StackResult:
    """Score the candidates on dev, apply the shipping rule, fit the winner on all of dev (and the
    cross-fitted train outputs) and save it."""
    stack = params.stack
    members = list(stack.members)
    dev = read_sentences(params.prepare.output_dir / DEV_SPLIT)
    gold = [s.tags for s in dev]
    log.info("stack: %d dev sentences, members %s", len(dev), members)
    started = time.perf_counter()
    with tqdm(total=len(STACK_PHASES), desc="stack", unit="phase", disable=None) as bar:
        bar.set_postfix_str(STACK_PHASES[0])
        outputs = member_outputs(load_predictors(params, members), [s.chars for s in dev], averaged=needs_averaged(params))
        training, fit_on = fit_data(params, members, outputs, gold)
        log.info("stack: members' outputs in %.1f s", time.perf_counter() - started)
        bar.update()
        bar.set_postfix_str(STACK_PHASES[1])
        members_f1 = member_scores(outputs, gold, members)
        candidates = candidate_scores(outputs, gold, members, stack, training) if len(members) > 1 else {}
        choice = choose(members_f1, candidates, stack)
        log.info("stack: members %s, candidates %s -> %s (%s) at %.1f s", members_f1,
                 {name: c.mean for name, c in candidates.items()}, choice.kind, choice.reason, time.perf_counter() - started)
        bar.update()
        bar.set_postfix_str(STACK_PHASES[2])
        kind = make_kind(choice.kind, choice.members, stack).fit(*fit_on)
        member_dirs = {slot: params.train.output_dir / slot for slot in members}
        record = selection_record(members_f1, candidates, choice, fit_on_words(params))
        version = save_ensemble(stack.output_dir, kind, member_dirs, record)
        bar.update()
    log.info("stack: saved %s (model_version %s) in %.1f s", stack.output_dir, version, time.perf_counter() - started)
    chars = sum(len(s.chars) for s in dev)
    return StackResult(stack.output_dir, kind.name, kind.members, choice.reason, len(dev), chars, version)
