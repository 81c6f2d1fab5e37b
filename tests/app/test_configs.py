"""configs/*.yaml are complete params files, generated from params.yaml + configs/overrides/ and kept in sync."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from healthner.config import deep_merge, load_params

REPO = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("make_configs", REPO / "scripts" / "make_configs.py")
make_configs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(make_configs)
PROFILES = make_configs.profiles()


def test_the_generated_profiles_are_what_params_yaml_and_their_overrides_give() -> None:
    assert {"paper", "monpa"} <= set(PROFILES)
    assert make_configs.main(check=True) == 0, "run python scripts/make_configs.py"


def _stage_params() -> list[str]:
    """Every params key a dvc.yaml stage reads (foreach ${key} expanded over the slots)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    keys = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for key in body.get("params", []):
            slots = ("bert", "roberta", "electra", "albert") if "${key}" in key else ("",)
            keys.extend(key.replace("${key}", slot) for slot in slots)
    return keys


PARAMS_FILES = {"params.yaml": REPO / "params.yaml", **{name: REPO / "configs" / f"{name}.yaml" for name in PROFILES}}


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_a_profile_holds_every_param_that_dvc_stages_read(name: str) -> None:
    """`dvc repro` on params.yaml, or after `cp configs/NAME.yaml params.yaml`, must not stop at MissingParamsError."""
    raw = yaml.safe_load(PARAMS_FILES[name].read_text(encoding="utf-8"))
    missing = []
    for key in _stage_params():
        node = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    assert not missing
    load_params(PARAMS_FILES[name])  # and it is a valid typed config


def test_overrides_merge_key_by_key_and_replace_a_slot_or_an_empty_mapping_whole() -> None:
    base = {"train": {"epochs": 10, "seed": 13}, "encoders": {"bert": {"init": "scratch", "config": {"hidden_size": 128}}},
            "stack": {"max_depth": None, "opts": {"a": 1}}}
    override = {"train": {"epochs": 25}, "encoders": {"bert": {"init": "pretrained", "config": {"dropout": 0.1}}},
                "stack": {"opts": {}}}
    assert deep_merge(base, override, **make_configs.RULES) == {
        "train": {"epochs": 25, "seed": 13}, "encoders": {"bert": {"init": "pretrained", "config": {"dropout": 0.1}}},
        "stack": {"max_depth": None, "opts": {}},
    }
    # without the override file's rules (params merged in code): slots merge, and {} changes nothing
    assert deep_merge(base, override)["encoders"]["bert"]["config"] == {"hidden_size": 128, "dropout": 0.1}
    assert deep_merge(base, override)["stack"]["opts"] == {"a": 1}


def test_named_list_entries_merge_by_name() -> None:
    base = [{"name": "a", "format": "conll"}, {"name": "b", "format": "jsonl", "enabled": False}]
    override = [{"name": "b", "enabled": True}, {"name": "c", "format": "conll"}]
    merged = deep_merge({"files": base}, {"files": override}, **make_configs.RULES)["files"]
    assert merged == [base[0], {"name": "b", "format": "jsonl", "enabled": True}, {"name": "c", "format": "conll"}]
    assert deep_merge({"files": base}, {"files": override})["files"] == override  # without the rule: replaced
    assert deep_merge({"x": [1, 2]}, {"x": [3]}, **make_configs.RULES) == {"x": [3]}  # other lists are replaced


def test_the_paper_profile_is_the_papers_settings() -> None:
    paper = load_params(REPO / "configs" / "paper.yaml")
    assert all(e.init == "pretrained" and e.checkpoint and not e.config for e in paper.encoders.values())
    assert (paper.train.learning_rate, paper.train.epochs, paper.model.lac, paper.model.use_lexicon) == (
        1e-4, 25, "off", False
    )
    assert [f.enabled for f in paper.data.files if f.name == "healthner_train.jsonl"] == [True]
    monpa = load_params(REPO / "configs" / "monpa.yaml")
    assert monpa.encoders["albert"].init == "pretrained" and monpa.encoders["bert"].init == "scratch"
