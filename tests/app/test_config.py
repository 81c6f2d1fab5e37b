"""params overrides from the command line (`healthner train --set section.field=value`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthner.config import load_params, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_overrides_nest_by_dots_and_keep_yaml_types() -> None:
    overrides = parse_overrides(["model.lac=finetune", "train.epochs=4", "lexicon.sources=[thuocl]", "loss.focal.gamma=0"])
    assert overrides == {
        "model": {"lac": "finetune"}, "train": {"epochs": 4}, "lexicon": {"sources": ["thuocl"]},
        "loss": {"focal": {"gamma": 0}},
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
    nightly = load_params(REPO / "params.yaml").nightly.model_copy(
        update={"model_dir": release, "fallback_model_dir": evaluated}
    )
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


# --- issue 18.8: bad numbers are refused at load time, naming the field ----------------------------

BAD_VALUES = [
    ("nightly", "shards", 0), ("nightly", "shards", -1), ("nightly", "shards", True), ("nightly", "shards", "2"),
    ("nightly", "max_article_chars", 0), ("nightly", "max_article_id_chars", 0), ("nightly", "sample_articles", -5),
    ("nightly", "chunk_articles", 0), ("nightly", "tag_slots", 0), ("nightly", "sample_date", "yesterday"),
    ("tag", "batch_chars", 0), ("tag", "torch_threads", 0), ("train", "epochs", 0), ("train", "batch_size", True),
    ("train", "learning_rate", 0), ("stack", "n_estimators", 0), ("stack", "context", -1), ("stack", "n_jobs", 0),
    ("stack", "min_samples_leaf", 0), ("prepare", "window_overlap", 126), ("lexicon", "min_len", 11),
    ("model", "dropout", 1.0), ("bench", "night_shards", [0]), ("validate", "max_examples", -1),
]


@pytest.mark.parametrize(("section", "field", "value"), BAD_VALUES)
def test_a_bad_number_in_params_yaml_is_refused_naming_its_field(tmp_path: Path, section: str, field: str, value) -> None:
    import yaml

    from healthner.errors import ConfigError, HealthnerError

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw[section] = {**raw[section], field: value}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_params(path)
    message = str(caught.value)
    assert isinstance(caught.value, HealthnerError) and "\n" not in message
    assert str(path) in message and (f"{section}.{field}" in message or field in message)


def test_good_edge_values_still_load() -> None:
    params = load_params(REPO / "params.yaml").with_updates(
        nightly={"shards": 1, "tag_slots": 1, "max_article_chars": 1}, stack={"n_jobs": -1, "context": 0},
        tag={"torch_threads": None}, train={"max_steps": None},
    )
    assert params.nightly.shards == 1 and params.stack.n_jobs == -1


def test_missing_or_malformed_params_file_is_a_config_error(tmp_path: Path) -> None:
    from healthner.errors import ConfigError

    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
