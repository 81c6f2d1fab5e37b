"""One typed configuration object, loaded from params.yaml; every step takes the part it needs.

The sections' models live in healthner.sections, one module per layer; here they are assembled into
Params, which params.yaml, slot overrides and `--set` assignments are merged into and checked against."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError

from healthner.errors import ConfigError, UnknownName
from healthner.sections.base import Section
from healthner.sections.corpus import (
    DataParams,
    FetchParams,
    LexiconParams,
    PrepareParams,
    SplitParams,
    UnlabeledParams,
    ValidateParams,
)
from healthner.sections.ensemble import (
    AblationParams,
    EvaluateParams,
    ReleaseParams,
    StackParams,
    StudentParams,
    TeachParams,
)
from healthner.sections.model import EncoderParams, LossParams, ModelParams, TrainParams
from healthner.sections.tagging import BenchParams, NightlyParams, TagParams

DEFAULT_PARAMS = Path("params.yaml")


class Params(Section):
    data: DataParams
    fetch: FetchParams = FetchParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams
    prepare: PrepareParams = PrepareParams()
    unlabeled: UnlabeledParams = UnlabeledParams()
    teach: TeachParams = TeachParams()
    student: StudentParams = StudentParams()
    lexicon: LexiconParams = LexiconParams()
    encoders: dict[str, EncoderParams]
    model: ModelParams = ModelParams()
    loss: LossParams = LossParams()
    train: TrainParams = TrainParams()
    stack: StackParams = StackParams()
    evaluate: EvaluateParams = EvaluateParams()
    release: ReleaseParams = ReleaseParams()
    tag: TagParams = TagParams()
    nightly: NightlyParams = NightlyParams()
    bench: BenchParams = BenchParams()
    ablation: AblationParams = AblationParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def validation(self) -> ValidateParams:
        return self.validate_

    def for_slot(self, slot: str) -> Params:
        """The params a slot trains with: its `encoders.<slot>.overrides` merged over the sections."""
        if slot not in self.encoders:
            raise UnknownName(f"unknown slot {slot!r}; params.yaml encoders has {sorted(self.encoders)}")
        overrides = self.encoders[slot].overrides
        return self.with_updates(**overrides) if overrides else self

    def with_updates(self, **sections: dict[str, Any]) -> Params:
        """A copy with some sections' fields replaced (tests, CLI overrides, ablation rows); nested
        mappings merge key by key, so `loss={"rdrop": {"enabled": False}}` keeps rdrop's alpha."""
        overrides = {("validate" if name == "validate_" else name): fields for name, fields in sections.items()}
        return Params.model_validate(deep_merge(self.model_dump(by_alias=True), overrides))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any], *, whole: Collection[str] = (), by_name: bool = False,
               empty_replaces: bool = False) -> dict[str, Any]:
    """`base` with `overrides` applied key by key, recursing into nested mappings (lists are replaced).

    A params file written as differences from another (configs/overrides/) adds three rules: `whole`
    names keys whose entries are replaced whole, not merged (each slot under `encoders`: an encoder is
    defined as one piece); `by_name` merges lists of mappings with `name` keys entry by entry, matched
    by name, new entries appended (data.files); `empty_replaces` makes an empty mapping replace what it
    overrides instead of changing nothing."""
    rules = {"whole": whole, "by_name": by_name, "empty_replaces": empty_replaces}
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and (value or not empty_replaces):
            merged[key] = {**current, **value} if key in whole else deep_merge(current, value, **rules)
        elif by_name and _named(current) and _named(value):
            merged[key] = _merge_named(current, value, rules)
        else:
            merged[key] = value
    return merged


def _named(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(e, dict) and "name" in e for e in value)


def _merge_named(base: list[dict[str, Any]], overrides: list[dict[str, Any]], rules: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {entry["name"]: entry for entry in overrides}
    merged = [deep_merge(entry, by_name.pop(entry["name"]), **rules) if entry["name"] in by_name else entry
              for entry in base]
    return merged + list(by_name.values())


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """['model.lac=off', 'train.epochs=4'] -> {'model': {'lac': 'off'}, 'train': {'epochs': 4}};
    values are read as YAML, so numbers, booleans and lists keep their types."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ValueError(f"override {item!r}: expected section.field=value")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return nested


def describe_errors(error: ValidationError) -> str:
    """pydantic's errors on one line, each naming its field: 'nightly.shards: Input should be greater than 0 (got 0)'."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        got = "" if item["type"] == "missing" else f" (got {item['input']!r:.60})"
        parts.append(f"{field}: {item['msg']}{got}")
    return "; ".join(parts)


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """params.yaml as the typed config; a missing file, bad YAML or a bad field is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the repo root or pass --params)")
    try:
        with path.open(encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
        return Params.model_validate(raw)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_errors(exc)}") from exc
