"""One trained slot folder scored on a prepared split, by its own CRF decode (conlleval-exact).

What the ablation rows, `healthner score` and a shipped student's test scores need: one folder, one
split, no other member. Here, below the ensemble layer, so a stage that scores one member does not
load the evaluate stage's plotting and combiners.
"""

from __future__ import annotations

from pathlib import Path

from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.errors import UnknownName
from healthner.model.devices import tag_device
from healthner.model.metrics import score

SPLITS = ("dev", "test")  # the prepared splits that are scored (train is what the members learn from)


def score_model(params: Params, model_dir: Path, split: str) -> dict:
    """Scores of one trained slot folder on a prepared split (`split`.parquet under prepare.output_dir)."""
    from healthner.model.predict import SlotPredictor

    if split not in SPLITS:
        raise UnknownName(f"split must be one of {SPLITS}, got {split!r}")
    sentences = read_sentences(params.prepare.output_dir / f"{split}.parquet")
    device = tag_device(params.tag)
    predictor = SlotPredictor.load(model_dir, device=device, **params.tag.batches_for(device))
    predicted = predictor.decode([s.chars for s in sentences])
    return score([s.tags for s in sentences], predicted).as_dict()
