"""stack: fit the random forest over the base models' dev-split outputs (the paper's section 2.2).

The forest is fit on the DEV split only (the base models were fit on train, so their dev marginals
are honest); its dev scores are therefore cross-validated by sentence (combiner.py). `fit_stack`
(the DVC stage) writes the self-contained `models/ensemble/` folder (shipped.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.ensemble.combiner import fit_forest, forest_inputs
from healthner.ensemble.shipped import member_outputs, save_ensemble

if TYPE_CHECKING:
    from healthner.model.predict import SlotPredictor

DEV_SPLIT = "dev.parquet"


@dataclass(frozen=True)
class StackResult:
    output_dir: Path
    members: list[str]
    dev_sentences: int
    dev_characters: int
    model_version: str

    def __str__(self) -> str:
        return (
            f"stack of {', '.join(self.members)} fit on {self.dev_sentences} dev sentences "
            f"({self.dev_characters} chars) -> {self.output_dir} (model_version {self.model_version})"
        )


def inference_device(params: Params) -> str:
    """params.train.device, with auto resolved (the GPU when there is one)."""
    from healthner.model.train import resolve_device

    return str(resolve_device(params.train.device))


def load_predictors(params: Params, members: Sequence[str]) -> dict[str, SlotPredictor]:
    """The trained base models, from models/<slot>/."""
    from healthner.model.predict import SlotPredictor

    device, batch_chars = inference_device(params), params.tag.batch_chars
    return {
        slot: SlotPredictor.load(params.train.output_dir / slot, device=device, batch_chars=batch_chars)
        for slot in members
    }


def fit_stack(params: Params) -> StackResult:
    """Fit the forest on the dev split's marginals and write the self-contained ensemble folder."""
    stack = params.stack
    members = list(stack.members)
    dev = read_sentences(params.prepare.output_dir / DEV_SPLIT)
    predictors = load_predictors(params, members)
    marginals, paths = member_outputs(predictors, [s.chars for s in dev], stack.viterbi_features)
    inputs, order = forest_inputs(marginals, paths, members, stack.viterbi_features)
    forest = fit_forest(inputs, [s.tags for s in dev], order, stack)
    member_dirs = {slot: params.train.output_dir / slot for slot in members}
    version = save_ensemble(stack.output_dir, forest, member_dirs, stack.context, stack.viterbi_features)
    return StackResult(stack.output_dir, members, len(dev), sum(len(s.chars) for s in dev), version)
