"""teacher: the model that labels the unlabeled text, written as its own folder beside what ships.

The teacher is the stack's members combined by `teach.kind` (default: the vote of the four), fit and
saved exactly as the stack stage fits and saves what ships (stack.py), but with the kind forced, and
into `teach.teacher` instead of `stack.output_dir`. A separate folder because the best teacher is
usually not what ships: a combiner costs several members' time per character, which a nightly tagger
cannot pay but a one-off labelling of unlabeled text can, and the shipping rule keeps it out of
`models/ensemble` unless it beats the best member by `stack.min_gain`. Only the forced kind is scored
on dev: the candidates the rule compares are the stack stage's business.
"""

from __future__ import annotations

from healthner.config import Params
from healthner.ensemble.kinds import MemberKind
from healthner.ensemble.stack import StackResult, fit_stack
from healthner.errors import ConfigError

MEMBER = MemberKind.name  # one member alone: no combiner to score


def teacher_params(params: Params) -> Params:
    """The stack's params with the teacher's kind forced, its folder as the output, and that kind as the only
    candidate scored (auto keeps the rule and its candidates: the teacher is then what ships)."""
    cfg = params.teach
    if cfg.teacher.resolve() == params.stack.output_dir.resolve():
        raise ConfigError(f"teach.teacher is {cfg.teacher}, the stack's own folder (stack.output_dir): "
                          "give the teacher a folder of its own, e.g. models/teacher")
    updates: dict = {"kind": cfg.kind, "output_dir": str(cfg.teacher)}
    if cfg.kind != "auto":
        updates["candidates"] = [] if cfg.kind == MEMBER else [cfg.kind]
    return params.with_updates(stack=updates)


def build_teacher(params: Params) -> StackResult:
    """The DVC `teacher` stage: the stack's members combined by teach.kind, saved in teach.teacher."""
    return fit_stack(teacher_params(params))
