"""params overrides from the command line (`healthner train --set section.field=value`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthner.config import load_params, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_overrides_nest_by_dots_and_keep_yaml_types() -> None:
    overrides = parse_overrides(["model.use_lac=false", "train.epochs=4", "lexicon.sources=[thuocl]", "loss.focal.gamma=0"])
    assert overrides == {
        "model": {"use_lac": False}, "train": {"epochs": 4}, "lexicon": {"sources": ["thuocl"]}, "loss": {"focal": {"gamma": 0}},
    }
    params = load_params(REPO / "params.yaml").with_updates(**overrides)
    assert params.model.use_lac is False and params.train.epochs == 4 and params.loss.focal.gamma == 0
    assert params.loss.focal.enabled == load_params(REPO / "params.yaml").loss.focal.enabled  # siblings kept


@pytest.mark.parametrize("bad", ["epochs=4", "train.epochs", "train..epochs=4"])
def test_a_malformed_override_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="section.field=value"):
        parse_overrides([bad])
