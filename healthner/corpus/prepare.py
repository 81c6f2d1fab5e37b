"""prepare: split the validated corpus into train/dev/test and tokenise it for each encoder slot.

Every character becomes exactly one token id, so tags align 1:1 with tokens (no sub-word
guessing). Sentences longer than the window are cut into overlapping windows; `windows.merge_windows`
maps per-window outputs back to the sentence exactly.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.config import Params
from healthner.corpus.labels import TAG_TO_ID, spans
from healthner.corpus.readers import Sentence, read_sentences, write_sentences
from healthner.corpus.vocab import CharVocab, write_vocab_source
from healthner.corpus.vocab import slot_vocab as encoder_vocab
from healthner.corpus.windows import make_windows
from healthner.io import write_json
from healthner.sections.corpus import SplitParams
from healthner.sections.model import EncoderParams

SPLITS = ("train", "dev", "test")
PREPARE_REPORT = "prepare.json"

WINDOW_SCHEMA = pa.schema(
    [
        ("sent_id", pa.string()),
        ("window", pa.int32()),
        ("offset", pa.int32()),
        ("n_chars", pa.int32()),
        ("input_ids", pa.list_(pa.int32())),
        ("label_ids", pa.list_(pa.int32())),
        ("chars", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
    ]
)


def _unit_hash(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key): the split never depends on file order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(sentences: Sequence[Sentence], split: SplitParams) -> list[str]:
    """'test' for the held-out sources, else 'dev' for a seeded fraction, else 'train'."""
    test_sources = set(split.test_sources)
    return [
        "test" if s.source in test_sources else "dev" if _unit_hash(split.seed, s.sent_id) < split.dev_fraction else "train"
        for s in sentences
    ]


@dataclass
class SplitStats:
    sentences: int = 0
    characters: int = 0
    entities: int = 0
    genres: dict[str, int] = field(default_factory=dict)
    unknown_chars: dict[str, int] = field(default_factory=dict)  # per slot
    windows: dict[str, int] = field(default_factory=dict)  # per slot


@dataclass
class PrepareReport:
    splits: dict[str, SplitStats]
    dropped_test_duplicates: int
    vocab_sizes: dict[str, int]

    def __str__(self) -> str:
        rows = [f"{n}: {s.sentences} sentences, {s.characters} chars, {s.entities} entities" for n, s in self.splits.items()]
        rows.append(f"dropped (text also in test): {self.dropped_test_duplicates}; vocab sizes: {self.vocab_sizes}")
        return "\n".join(rows)


def split_sentences(sentences: Sequence[Sentence], split: SplitParams) -> tuple[dict[str, list[Sentence]], int]:
    """Sentences by split; optionally drop train/dev sentences whose text also occurs in test."""
    by_split: dict[str, list[Sentence]] = {name: [] for name in SPLITS}
    for sentence, name in zip(sentences, assign_splits(sentences, split)):
        by_split[name].append(sentence)
    dropped = 0
    if split.drop_test_duplicates:
        test_texts = {s.text for s in by_split["test"]}
        for name in ("train", "dev"):
            kept = [s for s in by_split[name] if s.text not in test_texts]
            dropped += len(by_split[name]) - len(kept)
            by_split[name] = kept
    return by_split, dropped


def window_rows(sentence: Sentence, vocab: CharVocab, window_chars: int, overlap: int) -> tuple[list[dict], int]:
    """One row per window ([CLS] + char ids + [SEP], one label per char) and the unknown-char count."""
    ids, unknown = vocab.encode(sentence.chars)
    rows = []
    for index, (start, end) in enumerate(make_windows(len(sentence.chars), window_chars, overlap)):
        rows.append(
            {
                "sent_id": sentence.sent_id,
                "window": index,
                "offset": start,
                "n_chars": end - start,
                "input_ids": [vocab.cls_id, *ids[start:end], vocab.sep_id],
                "label_ids": [TAG_TO_ID[t] for t in sentence.tags[start:end]],
                "chars": sentence.chars[start:end],
                "tags": sentence.tags[start:end],
            }
        )
    return rows, unknown


def tokenize_split(
    sentences: Sequence[Sentence], vocab: CharVocab, window_chars: int, overlap: int, path: Path
) -> tuple[int, int]:
    """Write one split's windows for one slot; returns (windows, unknown characters)."""
    rows, unknown = [], 0
    for sentence in sentences:
        sentence_rows, sentence_unknown = window_rows(sentence, vocab, window_chars, overlap)
        rows.extend(sentence_rows)
        unknown += sentence_unknown
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOW_SCHEMA), path)
    return len(rows), unknown


def slot_vocab(encoder: EncoderParams, train: Sequence[Sentence], min_freq: int) -> CharVocab:
    """The encoder's own vocabulary when it has one, else one built from the training split."""
    return encoder_vocab(encoder, (s.chars for s in train), min_freq)


def save_slot_vocab(folder: Path, encoder: EncoderParams, vocab: CharVocab) -> None:
    """A prepared slot's vocab.txt and the record of its source, which train checks (vocab.check_vocab_source)."""
    vocab.save(folder)
    write_vocab_source(folder, encoder, vocab)


def _split_stats(sentences: Sequence[Sentence]) -> SplitStats:
    return SplitStats(
        sentences=len(sentences),
        characters=sum(len(s.chars) for s in sentences),
        entities=sum(len(spans(s.tags)) for s in sentences),
        genres=dict(Counter(s.genre for s in sentences)),
    )


def prepare(params: Params) -> PrepareReport:
    """The DVC `prepare` stage: validated corpus in, split and tokenised Parquet files out."""
    sentences = read_sentences(params.validation.output)
    by_split, dropped = split_sentences(sentences, params.split)
    out = params.prepare.output_dir
    stats = {name: _split_stats(group) for name, group in by_split.items()}
    for name, group in by_split.items():
        write_sentences(group, out / f"{name}.parquet")
    vocab_sizes = {}
    for slot, encoder in params.encoders.items():
        vocab = slot_vocab(encoder, by_split["train"], params.prepare.min_char_freq)
        save_slot_vocab(out / slot, encoder, vocab)
        vocab_sizes[slot] = len(vocab)
        for name, group in by_split.items():
            path = out / slot / f"{name}.parquet"
            windows, unknown = tokenize_split(group, vocab, params.prepare.window_chars, params.prepare.window_overlap, path)
            stats[name].windows[slot], stats[name].unknown_chars[slot] = windows, unknown
    report = PrepareReport(stats, dropped, vocab_sizes)
    _write_report(report, params.evaluate.reports_dir / PREPARE_REPORT)
    return report


def _write_report(report: PrepareReport, path: Path) -> None:
    write_json(path, asdict(report), final_newline=False)
