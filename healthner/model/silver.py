"""Silver data: the teacher's labels of unlabeled sentences (data/silver), as a student's training windows.

One Parquet row per sentence (`SILVER_SCHEMA`): its text, the teacher's tags, the teacher's
per-character tag probabilities (`marginals`, a list of rows in TAGS order) and a confidence, the
mean probability the teacher gives its own tags. The student reads the sentences whose confidence
is at least `teach.min_confidence`, then a fixed share of them (`student.silver_fraction`): the
share is a prefix of the sentences ordered by a hash of their id, so a smaller share is always
inside a larger one, and the comparison of amounts compares amounts, not samples.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from healthner.corpus.labels import TAG_TO_ID, TAGS
from healthner.corpus.vocab import CharVocab
from healthner.corpus.windows import make_windows
from healthner.model.losses import window_labels

SILVER_SCHEMA = pa.schema(
    [
        ("sentence_id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("marginals", pa.list_(pa.list_(pa.float32()))),
        ("confidence", pa.float32()),
    ]
)


@dataclass
class SilverWindows:
    """A slot's silver windows: token ids with [CLS]/[SEP], the teacher's tag ids and probabilities per character."""

    input_ids: list[np.ndarray]
    labels: list[np.ndarray]
    chars: list[list[str]]
    targets: list[np.ndarray] | None  # (n_chars, len(TAGS)) per window; None when only hard tags are read


@dataclass
class SilverSet:
    """The silver sentences a student trains on, and how many the filters left out."""

    sentence_ids: list[str]
    chars: list[list[str]]
    tags: list[list[str]]
    marginals: list[np.ndarray] | None
    read: int  # sentences in the file
    below_confidence: int  # left out by min_confidence
    outside_fraction: int  # confident, left out by silver_fraction
    sources: list[str]  # the unlabeled files the kept sentences come from

    def __len__(self) -> int:
        return len(self.sentence_ids)

    @classmethod
    def load(cls, path: Path, min_confidence: float, fraction: float, soft: bool) -> SilverSet:
        """The confident share of `path`; `soft`: also the teacher's probabilities (else tags alone)."""
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; run the teach stage first (dvc repro teach)")
        columns = ["sentence_id", "text", "source", "tags", "confidence"] + (["marginals"] if soft else [])
        table = pq.read_table(path, columns=columns)
        read = table.num_rows
        table = table.filter(pc.greater_equal(table.column("confidence"), pa.scalar(min_confidence, pa.float32())))
        confident = table.num_rows
        ids = table.column("sentence_id").to_pylist()
        keep = sorted(range(confident), key=lambda k: hashlib.sha256(ids[k].encode()).digest())
        keep = sorted(keep[: math.floor(fraction * confident + 1e-9)])
        table = table.take(pa.array(keep, pa.int64()))
        marginals = _marginal_rows(table.column("marginals")) if soft else None
        return cls(table.column("sentence_id").to_pylist(), [list(t) for t in table.column("text").to_pylist()],
                   table.column("tags").to_pylist(), marginals, read, read - confident, confident - table.num_rows,
                   sorted(set(table.column("source").to_pylist())))

    def windows(self, vocab: CharVocab, window_chars: int, overlap: int) -> SilverWindows:
        """Each sentence cut into the tagger's windows, encoded with the slot's vocabulary."""
        ids, labels, chars, targets = [], [], [], []
        for k, sentence in enumerate(self.chars):
            encoded, _ = vocab.encode(sentence)
            tag_ids = [TAG_TO_ID[t] for t in self.tags[k]]
            for start, end in make_windows(len(sentence), window_chars, overlap):
                ids.append(np.asarray([vocab.cls_id, *encoded[start:end], vocab.sep_id], dtype=np.int64))
                labels.append(np.asarray(window_labels(tag_ids[start:end]), dtype=np.int64))
                chars.append(sentence[start:end])
                if self.marginals is not None:
                    targets.append(self.marginals[k][start:end])
        return SilverWindows(ids, labels, chars, targets if self.marginals is not None else None)


def _marginal_rows(column: pa.ChunkedArray) -> list[np.ndarray]:
    """list<list<float32>> as one (n_chars, len(TAGS)) float32 array per sentence, without Python floats."""
    sentences = column.combine_chunks()
    if len(sentences) == 0:
        return []
    chars = sentences.flatten()
    values = chars.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, len(TAGS))
    bounds = np.asarray(sentences.offsets.to_numpy()) - sentences.offsets[0].as_py()
    return [values[bounds[k] : bounds[k + 1]] for k in range(len(sentences))]
