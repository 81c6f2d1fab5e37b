"""The tag set and the BIO reading rules, exactly as conlleval (the shared tasks' scorer) reads them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

ENTITY_TYPES: tuple[str, ...] = ("BODY", "SYMP", "INST", "EXAM", "CHEM", "DISE", "DRUG", "SUPP", "TREAT", "TIME")
OUTSIDE = "O"
TAGS: tuple[str, ...] = (OUTSIDE,) + tuple(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I"))
TAG_TO_ID: dict[str, int] = {tag: i for i, tag in enumerate(TAGS)}


class Span(NamedTuple):
    type: str
    start: int  # first character
    end: int  # one past the last character


def split_tag(tag: str) -> tuple[str, str]:
    """('B', 'DISE') for 'B-DISE', ('O', '') for 'O'."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, _, etype = tag.partition("-")
    return prefix, etype


def starts_entity(prev: str, tag: str) -> bool:
    """conlleval's startOfChunk for BIO: B- always starts; I- starts after O or after another type."""
    prefix, etype = split_tag(tag)
    if prefix == "B":
        return True
    if prefix == "I":
        prev_prefix, prev_type = split_tag(prev)
        return prev_prefix == OUTSIDE or prev_type != etype
    return False


def spans(tags: Sequence[str]) -> list[Span]:
    """Entities of one sentence as conlleval counts them (an I- after O or another type opens one)."""
    found: list[Span] = []
    start, etype, prev = None, "", OUTSIDE
    for i, tag in enumerate(tags):
        prefix, tag_type = split_tag(tag)
        continues = prefix == "I" and start is not None and not starts_entity(prev, tag)
        if not continues and start is not None:
            found.append(Span(etype, start, i))
            start = None
        if prefix != OUTSIDE and start is None:
            start, etype = i, tag_type
        prev = tag
    if start is not None:
        found.append(Span(etype, start, len(tags)))
    return found


def span_tags(found: Sequence[Span], length: int) -> list[str]:
    """The BIO tags of a sentence of `length` characters holding the (non-overlapping) entities `found`."""
    tags = [OUTSIDE] * length
    for span in found:
        tags[span.start : span.end] = [f"B-{span.type}"] + [f"I-{span.type}"] * (span.end - span.start - 1)
    return tags


def is_valid_transition(prev: str, tag: str) -> bool:
    """Strict BIO: I-X only after B-X or I-X (a sentence starts after an implicit O)."""
    prefix, etype = split_tag(tag)
    return prefix != "I" or (prev != OUTSIDE and split_tag(prev)[1] == etype)


def repair_bio(tags: Sequence[str]) -> tuple[list[str], list[int]]:
    """Rewrite each I- that conlleval reads as an entity start into B-; returns the tags and fixed positions."""
    fixed, positions, prev = list(tags), [], OUTSIDE
    for i, tag in enumerate(tags):
        if split_tag(tag)[0] == "I" and starts_entity(prev, tag):
            fixed[i] = "B-" + split_tag(tag)[1]
            positions.append(i)
        prev = tag
    return fixed, positions
