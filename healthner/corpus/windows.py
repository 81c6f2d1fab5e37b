"""Cut text into sentences, long sentences into overlapping windows, and map per-window outputs back exactly."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np


def split_sentences(text: str, delimiters: str, max_chars: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence, the delimiter kept with the sentence before it, and none longer
    than `max_chars` (bounded_pieces); leading and trailing whitespace trimmed and whitespace-only
    pieces dropped (offsets stay true)."""
    bounds, start = [], 0
    for i, char in enumerate(text):
        if char in delimiters:
            bounds.extend(bounded_pieces(text, start, i + 1, max_chars))
            start = i + 1
    bounds.extend(bounded_pieces(text, start, len(text), max_chars))
    trimmed = []
    for begin, end in bounds:
        while begin < end and text[begin].isspace():
            begin += 1
        while end > begin and text[end - 1].isspace():
            end -= 1
        if begin < end:
            trimmed.append((begin, end))
    return trimmed


def bounded_pieces(text: str, start: int, end: int, max_chars: int | None) -> Iterator[tuple[int, int]]:
    """[start, end) cut into consecutive pieces of at most `max_chars`: each cut after the last space or
    punctuation mark in the second half of the piece, else at `max_chars`. A text without delimiters
    costs time and memory in proportion to its longest piece (the CRF runs over a whole piece), so
    this bound keeps any text's cost linear; an entity across a cut is cut with it."""
    while max_chars is not None and end - start > max_chars:
        limit = start + max_chars
        cut = next((i + 1 for i in range(limit - 1, start + max_chars // 2 - 1, -1) if _is_break(text[i])), limit)
        yield start, cut
        start = cut
    yield start, end


def _is_break(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith(("P", "Z"))


def make_windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) character ranges covering [0, length); consecutive ones share `overlap` characters."""
    if size <= overlap:
        raise ValueError(f"window size {size} must exceed the overlap {overlap}")
    if length <= size:
        return [(0, length)]
    step, spans, start = size - overlap, [], 0
    while True:
        end = min(start + size, length)
        spans.append((start, end))
        if end == length:
            return spans
        start = min(start + step, length - size)


def merge_windows(length: int, windows: Sequence[tuple[int, int]], values: Sequence[np.ndarray]) -> np.ndarray:
    """Per-character values for the whole sentence: each character takes the window where it sits
    farthest from an edge (most context on both sides)."""
    if not windows:
        raise ValueError("no windows to merge")
    best_margin = np.full(length, -1, dtype=np.int64)
    out = np.empty((length,) + values[0].shape[1:], dtype=values[0].dtype)
    for (start, end), vals in zip(windows, values):
        if len(vals) != end - start:
            raise ValueError(f"window {start}:{end} has {len(vals)} values")
        pos = np.arange(start, end)
        margin = np.minimum(pos - start, end - 1 - pos)
        take = margin > best_margin[start:end]
        out[start:end][take] = vals[take]
        best_margin[start:end][take] = margin[take]
    if (best_margin < 0).any():
        raise ValueError("windows do not cover the sentence")
    return out
