"""The teacher stage: the stack's members combined by teach.kind, forced, in a folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthner.config import load_params
from healthner.ensemble.teacher import teacher_params
from healthner.errors import ConfigError
from tests.tiny_models import REPO


def _params(tmp_path: Path, **teach):
    return load_params(REPO / "params.yaml").with_updates(
        stack={"output_dir": str(tmp_path / "ensemble"), "kind": "auto"},
        teach={"teacher": str(tmp_path / "teacher"), **teach})


def test_the_teacher_is_the_forced_kind_scored_alone_in_its_own_folder(tmp_path: Path) -> None:
    stack = teacher_params(_params(tmp_path, kind="vote")).stack
    assert (stack.kind, stack.candidates, stack.output_dir) == ("vote", ["vote"], tmp_path / "teacher")
    member = teacher_params(_params(tmp_path, kind="member")).stack
    assert (member.kind, member.candidates) == ("member", [])


def test_an_auto_teacher_keeps_the_rule_and_its_candidates(tmp_path: Path) -> None:
    params = _params(tmp_path, kind="auto")
    stack = teacher_params(params).stack
    assert (stack.kind, stack.candidates) == ("auto", params.stack.candidates)


def test_a_teacher_in_the_stacks_own_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="teach.teacher"):
        teacher_params(_params(tmp_path).with_updates(teach={"teacher": str(tmp_path / "ensemble")}))
