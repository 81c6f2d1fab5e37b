"""params overrides from the command line (`healthner train --set section.field=value`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthner.config import load_params, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_overrides_nest_by_dots_and_keep_yaml_types() -> None:
    overrides = parse_overrides(["model.lac=finetune", "train.epochs=4", "lexicon.sources=[thuocl]", "loss.focal.gamma=0"])
    assert overrides == {
        "model": {"lac": "finetune"}, "train": {"epochs": 4}, "lexicon": {"sources": ["thuocl"]}, "loss": {"focal": {"gamma": 0}},
    }
    params = load_params(REPO / "params.yaml").with_updates(**overrides)
    assert params.model.lac == "finetune" and params.train.epochs == 4 and params.loss.focal.gamma == 0
    assert params.loss.focal.enabled == load_params(REPO / "params.yaml").loss.focal.enabled  # siblings kept


@pytest.mark.parametrize(("old", "lac"), [(True, "frozen"), (False, "off")])
def test_the_old_use_lac_switch_still_reads(old: bool, lac: str) -> None:
    params = load_params(REPO / "params.yaml")
    assert params.with_updates(model={"use_lac": old}).model.lac == lac  # --set model.use_lac=... as before
    assert params.with_updates(**parse_overrides([f"model.lac={lac}"])).model.lac == lac  # YAML reads `off` as false


@pytest.mark.parametrize("bad", ["epochs=4", "train.epochs", "train..epochs=4"])
def test_a_malformed_override_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="section.field=value"):
        parse_overrides([bad])


def test_nights_are_tagged_with_the_release_when_there_is_one(tmp_path: Path) -> None:
    release, evaluated = tmp_path / "release", tmp_path / "ensemble"
    nightly = load_params(REPO / "params.yaml").nightly.model_copy(update={"model_dir": release, "fallback_model_dir": evaluated})
    assert nightly.tagging_model() == evaluated
    release.mkdir()
    (release / "ensemble.json").write_text("{}")
    assert nightly.tagging_model() == release


def test_a_slot_trains_with_its_own_overrides_merged_over_the_sections() -> None:
    params = load_params(REPO / "params.yaml").with_updates(
        encoders={"electra": {"overrides": {"model": {"lac": "off"}, "train": {"seed": 5}}}}
    )
    electra, bert = params.for_slot("electra"), params.for_slot("bert")
    assert electra.model.lac == "off" and electra.train.seed == 5
    assert electra.model.lstm_hidden == params.model.lstm_hidden  # siblings kept
    assert bert.model == params.model.model_copy(update=params.encoders["bert"].overrides.get("model", {}))
    with pytest.raises(KeyError, match="unknown slot"):
        params.for_slot("gpt")
