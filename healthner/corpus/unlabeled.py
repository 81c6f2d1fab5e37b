"""unlabeled: raw health text -> deduplicated Traditional-script sentences a teacher can label.

The source files (`data.unlabeled_files` in `data.unlabeled_dir`) are Simplified Chinese in
GB18030. Each is decoded with every undecodable byte counted and dropped (never a crash),
converted with OpenCC (`unlabeled.opencc_config`, Taiwan usage by default, as in the corpus),
cut into sentences exactly as the tagger cuts articles, and filtered:

- `too_short` / `too_long`: outside [`unlabeled.min_chars`, `unlabeled.max_chars`];
- `duplicate`: the same text seen before, in any file (the two sources overlap);
- `in_dev` / `in_test`: the text is a dev or test sentence, or one of their sentence pieces, so
  that a model trained on it never sees what it is scored on.

Further sources come in as `TextRecord`s from the caller (`build_unlabeled(params, extra)`), e.g.
the articles the nightly DAG published (healthner.nightly.published_text): this module reads only
files and knows no warehouse, so the corpus layer never imports the nightly one, while every
source goes through the one conversion, cut, dedup and leak filter here. Their text is converted
too, although already Traditional: the leak filter compares converted text with the converted
dev and test sentences, so every source must be in the same script form to be caught.

Counts reconcile: sentences cut = kept + every drop reason, per source and in all.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.corpus.windows import split_sentences
from healthner.errors import HealthnerError
from healthner.io import write_json

ENCODING = "gb18030"
SCHEMA = pa.schema([("sentence_id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("record", pa.int32())])
CSV_TEXT_COLUMNS = ("title", "ask", "answer")


@dataclass(frozen=True)
class TextRecord:
    """One record of a source other than the files: its source's name (its key in the report, and
    each kept sentence's `source`), its number within that source, and its texts."""

    source: str
    record: int
    texts: tuple[str, ...]


@dataclass
class SourceCounts:
    records: int = 0
    undecodable_bytes: int = 0
    sentences: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # a plain dict: asdict() breaks a Counter

    def reconciles(self) -> bool:
        return self.sentences == self.kept + sum(self.dropped.values())


@dataclass
class UnlabeledReport:
    sources: dict[str, SourceCounts]  # per file (by name) and per extra source
    kept: int
    dropped: dict[str, int]
    sha256: str  # of the written sentences.parquet: what a teacher labelled

    def __str__(self) -> str:
        drops = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.dropped.items()))
        return f"unlabeled: {self.kept:,} sentences kept; dropped {drops or 'none'}"


def decode(raw: bytes) -> tuple[str, int]:
    """GB18030 text and the count of undecodable bytes, which are dropped: each becomes one lone
    surrogate under `surrogateescape`, so the count is exact."""
    text = raw.decode(ENCODING, errors="surrogateescape")
    bad = sum(1 for char in text if "\udc80" <= char <= "\udcff")
    return (text.encode("utf-8", errors="ignore").decode("utf-8") if bad else text), bad


def qa_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """`title,question` on one line, the answer on the next, blocks apart by an empty line: (first
    line, texts). The title may hold a comma, so the first line is cut at ASCII commas into pieces."""
    block: list[str] = []
    start = 0
    for number, line in enumerate([*text.split("\n"), ""], start=1):
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            yield start, [*block[0].split(","), *block[1:]]
            block, start = [], 0


def qa_rows(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """A CSV with a `department,title,ask,answer` header (answers may span lines inside quotes)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = set(CSV_TEXT_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise HealthnerError(f"{path}:1: the header lacks {sorted(missing)} (expected department,title,ask,answer)")
    for row in reader:
        yield reader.line_num, [row[column] or "" for column in CSV_TEXT_COLUMNS]


def records(path: Path) -> tuple[Iterator[tuple[int, list[str]]], int]:
    """(line, texts) per record of one source file, by its suffix, and its undecodable bytes."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: unlabeled file not found (listed in params.yaml data.unlabeled_files)")
    text, bad = decode(path.read_bytes())
    if path.suffix == ".csv":
        return qa_rows(text, path), bad
    if path.suffix == ".txt":
        return qa_blocks(text), bad
    raise HealthnerError(f"{path}: unknown unlabeled format {path.suffix!r} (.txt question-answer blocks or .csv rows)")


def held_out_texts(params: Params, convert: Callable[[str], str]) -> dict[str, set[str]]:
    """Every dev and test sentence, whole and cut into the pieces the tagger would cut it into,
    through the same script conversion as the unlabeled text: OpenCC also rewrites some Traditional
    characters (排泄 -> 排洩), and a held-out sentence must match its own converted copy."""
    cut = params.tag.sentence_delimiters, params.tag.max_sentence_chars
    held = {}
    for split in ("dev", "test"):
        texts = {convert(s.text) for s in read_sentences(params.prepare.output_dir / f"{split}.parquet")}
        held[split] = texts | {t[a:b] for t in texts for a, b in split_sentences(t, *cut)}
    return held


class Filter:
    """Decides, sentence by sentence, keep or the drop reason (first match wins, in the module's order)."""

    def __init__(self, params: Params, convert: Callable[[str], str]) -> None:
        self.min_chars, self.max_chars = params.unlabeled.min_chars, params.unlabeled.max_chars
        self.held = held_out_texts(params, convert)
        self.seen: set[str] = set()

    def reason(self, sentence: str) -> str | None:
        if len(sentence) < self.min_chars:
            return "too_short"
        if len(sentence) > self.max_chars:
            return "too_long"
        if sentence in self.seen:
            return "duplicate"
        self.seen.add(sentence)
        return next((f"in_{split}" for split, texts in self.held.items() if sentence in texts), None)


def build_unlabeled(params: Params, extra: Iterable[TextRecord] = ()) -> UnlabeledReport:
    """The DVC `unlabeled` stage: every configured source file, then the `extra` records, in;
    data/unlabeled/sentences.parquet out. The files come first, so a text both hold is kept as the file's."""
    import opencc  # imported here: only this stage converts script

    cut = Cutter(params, opencc.OpenCC(params.unlabeled.opencc_config).convert)
    for entry in [f for f in params.data.unlabeled_files if f.enabled]:
        path = params.data.unlabeled_dir / entry.name
        found, bad = records(path)
        cut.counts[entry.name] = SourceCounts(undecodable_bytes=bad)
        for line, texts in found:
            cut.take(TextRecord(entry.name, line, tuple(texts)))
    for record in extra:
        cut.take(record)
    for name, tally in cut.counts.items():
        if not tally.reconciles():
            raise AssertionError(f"{name}: sentences cut != kept + dropped: {tally}")
    return _write(params, cut.rows, cut.counts)


class Cutter:
    """Records in, sentences kept as rows and every sentence counted, per source."""

    def __init__(self, params: Params, convert: Callable[[str], str]) -> None:
        self.convert, self.keep = convert, Filter(params, convert)
        self.delimiters, self.max_sentence_chars = params.tag.sentence_delimiters, params.tag.max_sentence_chars
        self.rows: list[tuple] = []
        self.counts: dict[str, SourceCounts] = {}

    def take(self, record: TextRecord) -> None:
        tally = self.counts.setdefault(record.source, SourceCounts())
        tally.records += 1
        for text in record.texts:
            converted = self.convert(text)
            for start, end in split_sentences(converted, self.delimiters, self.max_sentence_chars):
                tally.sentences += 1
                reason = self.keep.reason(converted[start:end])
                if reason:
                    tally.dropped[reason] = tally.dropped.get(reason, 0) + 1
                else:
                    tally.kept += 1
                    self.rows.append((f"{record.source}:{record.record}:{tally.kept}", converted[start:end],
                                      record.source, record.record))


def _write(params: Params, rows: list[tuple], counts: dict[str, SourceCounts]) -> UnlabeledReport:
    out = params.unlabeled.output
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([dict(zip(SCHEMA.names, row)) for row in rows], schema=SCHEMA), out)
    dropped = sum((Counter(c.dropped) for c in counts.values()), Counter())
    report = UnlabeledReport(counts, len(rows), dict(dropped), hashlib.sha256(out.read_bytes()).hexdigest())
    write_json(params.unlabeled.report, asdict(report), final_newline=False)
    return report
