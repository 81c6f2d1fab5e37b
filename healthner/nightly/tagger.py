"""Tag raw text of any length with the stacked ensemble; entities carry offsets into the input.

Texts are cut into sentences (the unit the models were trained on), a sentence longer than
`tag.max_sentence_chars` into pieces of at most that many (at its last space or punctuation mark
past half the piece, if any), whitespace-only pieces are skipped, and pieces are sorted by length
and batched so each forward pass holds about `batch_chars` characters. Offsets are kept from the cut
onwards, so `text[e.start:e.end] == e.text` for every entity, whatever the text holds (newlines,
ASCII, full-width characters). An entity never begins or ends on whitespace, a control, format or
unassigned character (Unicode C*), a separator (Z*) or a symbol (S*: emoji, °, +), and never begins
on a combining mark (M*, which belongs to the character before it): such edges are trimmed, and an
entity left empty is dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from healthner.corpus.labels import TAG_TO_ID, spans
from healthner.corpus.windows import split_sentences
from healthner.sections.tagging import TagParams

EDGE_CATEGORIES = ("C", "S", "Z")  # first letters of the Unicode categories an entity never begins or ends on
LEAD_CATEGORIES = ("M",)  # ... never begins on (a combining mark closes the character before it)

if TYPE_CHECKING:
    from healthner.ensemble.combiner import Prediction
    from healthner.ensemble.shipped import Ensemble


@dataclass(frozen=True)
class Entity:
    type: str
    text: str
    start: int  # first character, an offset into the original text
    end: int  # one past the last character
    score: float  # mean stack probability of each character's predicted tag


class Piece(NamedTuple):
    """One sentence of one input text: [start, end) in that text."""

    text_index: int
    start: int
    end: int


def length_batches(pieces: Sequence[Piece], batch_chars: int) -> Iterator[list[Piece]]:
    """Pieces sorted by length, grouped so a batch holds at most `batch_chars` characters
    (a longer piece goes alone: the ensemble windows it)."""
    batch: list[Piece] = []
    size = 0
    for piece in sorted(pieces, key=lambda p: p.end - p.start):
        length = piece.end - piece.start
        if batch and size + length > batch_chars:
            yield batch
            batch, size = [], 0
        batch.append(piece)
        size += length
    if batch:
        yield batch


def _is_edge(char: str, categories: tuple[str, ...] = EDGE_CATEGORIES) -> bool:
    return char.isspace() or unicodedata.category(char).startswith(categories)


def clean_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) narrowed past edge characters (see the module docstring); start == end if none is left."""
    while start < end and _is_edge(text[start], EDGE_CATEGORIES + LEAD_CATEGORIES):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return start, end


def entities_of(text: str, offset: int, prediction: Prediction) -> list[Entity]:
    """Entities of one sentence (conlleval reading of its tags), trimmed to clean edges, shifted by
    the sentence offset; the score is the mean over the characters kept."""
    tag_ids = np.array([TAG_TO_ID[tag] for tag in prediction.tags], dtype=np.int64)
    chosen = prediction.probs[np.arange(len(tag_ids)), tag_ids] if len(tag_ids) else np.empty(0)
    found = []
    for span in spans(prediction.tags):
        start, end = clean_bounds(text, offset + span.start, offset + span.end)
        if start < end:
            score = float(chosen[start - offset : end - offset].mean())
            found.append(Entity(span.type, text[start:end], start, end, score))
    return found


class Tagger:
    """The stacked ensemble behind a text-in, entities-out interface."""

    def __init__(self, ensemble: Ensemble, params: TagParams | None = None, batch_chars: int | None = None) -> None:
        self.ensemble = ensemble
        self.params = params or TagParams()
        self.batch_chars = batch_chars or self.params.batch_chars  # characters per ensemble call, for its device

    @classmethod
    def load(cls, model_dir: Path | str, params: TagParams | None = None, device: str | None = None,
             expected_version: str | None = None) -> Tagger:
        """The ensemble on `device` (None: params.device resolved), each member's forward passes under
        params.runtime in params.precision; torch (and ONNX Runtime) take params.torch_threads threads.
        `expected_version`: refuse a model of any other model_version (Ensemble.load)."""
        import torch

        from healthner.ensemble.shipped import Ensemble  # heavy (torch): only when a model is really needed
        from healthner.model.devices import tag_device

        params = params or TagParams()
        if params.torch_threads:
            torch.set_num_threads(params.torch_threads)
        device = device or tag_device(params)
        batches = params.batches_for(device)
        ensemble = Ensemble.load(Path(model_dir), device, expected_version, precision=params.precision,
                                 runtime=params.runtime, **batches)
        return cls(ensemble, params, batches["batch_chars"])

    @property
    def model_version(self) -> str:
        return str(self.ensemble.model_version)

    def tag(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Entities of each text, in text order, with offsets into that text."""
        pieces = [
            Piece(index, start, end)
            for index, text in enumerate(texts)
            for start, end in split_sentences(text, self.params.sentence_delimiters, self.params.max_sentence_chars)
        ]
        found: list[list[Entity]] = [[] for _ in texts]
        for batch in length_batches(pieces, self.batch_chars):
            sentences = [list(texts[p.text_index][p.start : p.end]) for p in batch]
            for piece, prediction in zip(batch, self.ensemble.predict(sentences), strict=True):
                if len(prediction.tags) != piece.end - piece.start:
                    raise ValueError(f"ensemble returned {len(prediction.tags)} tags for {piece.end - piece.start} chars")
                found[piece.text_index].extend(entities_of(texts[piece.text_index], piece.start, prediction))
        for entities in found:
            entities.sort(key=lambda e: (e.start, e.end))
        return found
