"""validate's own checks, in Python: each finding is a Defect naming the file and line, with a severity.

Per sentence: its genre, its BIO transitions (under validate.bio_repair) and flagged control
characters; per file, duplicate ids; over the whole corpus, texts that would leak across the
splits prepare assigns, are tagged two ways, or repeat within a split. The stage
(healthner/corpus/validate.py) runs them, then the GX suites, and reports.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from healthner.config import Params
from healthner.corpus.labels import OUTSIDE, repair_bio, spans
from healthner.corpus.readers import Defect, Sentence
from healthner.sections.corpus import CorpusFile

Outcome = Literal["out", "rejected", "failed"]
BIO_SEVERITY = {"conlleval": "repaired", "reject": "rejected", "fail": "error"}
BIO_ACTION = {
    "conlleval": "read as the start of an entity (conlleval), rewritten to {fixed}",
    "reject": "sentence rejected (validate.bio_repair: reject)",
    "fail": "invalid BIO transition (validate.bio_repair: fail)",
}
MAX_OTHER_PLACES = 3  # other occurrences named in one leakage / duplicate message
TEXT_PREVIEW = 40  # characters of a sentence quoted in a message


@dataclass
class FileStats:
    name: str
    path: str
    format: str
    sentences_in: int = 0
    sentences_out: int = 0
    sentences_rejected: int = 0
    sentences_failed: int = 0  # sentences with a hard defect; the stage fails when this is not 0
    entities: int = 0  # conlleval count on the sentences out, after repair
    characters: int = 0  # of the sentences out


@dataclass
class FileRun:
    """One file on its way through the checks."""

    entry: CorpusFile
    path: Path
    stats: FileStats
    sentences: list[Sentence] = field(default_factory=list)  # the sentences out so far
    defects: list[Defect] = field(default_factory=list)


def char_line(sentence: Sentence, index: int, fmt: str) -> int:
    """The file line of a sentence's character: its own line in CoNLL, the sentence's line in JSON lines."""
    return sentence.line + index if fmt == "conll" else sentence.line


def bio_defects(sentence: Sentence, path: Path, fmt: str, policy: str) -> tuple[list[str], list[Defect]]:
    """The repaired tags and one defect per I- that conlleval reads as an entity start."""
    fixed, positions = repair_bio(sentence.tags)
    defects = []
    for i in positions:
        prev = sentence.tags[i - 1] if i else f"{OUTSIDE} (sentence start)"
        message = f"{sentence.tags[i]} after {prev}: " + BIO_ACTION[policy].format(fixed=fixed[i])
        defects.append(Defect(str(path), char_line(sentence, i, fmt), "bio_transition", message, BIO_SEVERITY[policy]))
    return fixed, defects


def control_defects(sentence: Sentence, path: Path, fmt: str, categories: Sequence[str]) -> list[Defect]:
    """A warning per character of a flagged Unicode category; the text itself is kept as is."""
    return [
        Defect(
            str(path),
            char_line(sentence, i, fmt),
            "control_char",
            f"U+{ord(char):04X} ({unicodedata.category(char)}) at character {i + 1} of {sentence.sent_id}, kept as is",
            "warning",
        )
        for i, char in enumerate(sentence.chars)
        if unicodedata.category(char) in categories
    ]


def check_sentence(
    sentence: Sentence, run: FileRun, params: Params, genres: set[str]
) -> tuple[Sentence, Outcome, list[Defect]]:
    """Genre, BIO (under the repair policy) and control characters of one sentence the reader kept."""
    fmt, policy = run.entry.format, params.validation.bio_repair
    defects = control_defects(sentence, run.path, fmt, params.validation.flag_categories)
    if sentence.genre not in genres:
        message = f"unknown genre {sentence.genre!r} in {sentence.sent_id} (known: {sorted(genres)})"
        defects.append(Defect(str(run.path), sentence.line, "unknown_genre", message, "error"))
    fixed, bio = bio_defects(sentence, run.path, fmt, policy)
    defects += bio
    severities = {d.severity for d in defects}
    outcome: Outcome = "failed" if "error" in severities else "rejected" if "rejected" in severities else "out"
    return replace(sentence, tags=fixed), outcome, defects


def check_file(run: FileRun, params: Params, genres: set[str], seen_ids: dict[str, str]) -> None:
    """Apply the sentence checks to one file's readable sentences; keep the ones that come out."""
    kept = []
    for sentence in run.sentences:
        sentence, outcome, defects = check_sentence(sentence, run, params, genres)
        if sentence.sent_id in seen_ids:
            message = f"sentence id {sentence.sent_id!r} already used at {seen_ids[sentence.sent_id]}"
            defects.append(Defect(str(run.path), sentence.line, "duplicate_id", message, "error"))
            outcome = "failed"
        seen_ids.setdefault(sentence.sent_id, f"{run.path}:{sentence.line}")
        run.defects += defects
        if outcome == "out":
            kept.append(sentence)
        elif outcome == "rejected":
            run.stats.sentences_rejected += 1
        else:
            run.stats.sentences_failed += 1
    run.sentences = kept
    run.stats.sentences_out = len(kept)
    run.stats.entities = sum(len(spans(s.tags)) for s in kept)
    run.stats.characters = sum(len(s.chars) for s in kept)


def _place(sentence: Sentence, paths: dict[str, Path]) -> str:
    return f"{paths[sentence.source]}:{sentence.line}"


def split_defects(sentences: Sequence[Sentence], params: Params, paths: dict[str, Path]) -> list[Defect]:
    """Warnings over sentences sharing a text, with the splits prepare will assign them."""
    from healthner.corpus.prepare import assign_splits

    by_text: dict[str, list[tuple[Sentence, str]]] = defaultdict(list)
    for sentence, split in zip(sentences, assign_splits(sentences, params.split)):
        by_text[sentence.text].append((sentence, split))
    defects = []
    for text, group in by_text.items():
        if len(group) > 1:
            defects += _same_text_defects(text, group, paths)
    return defects


def _same_text_defects(text: str, group: list[tuple[Sentence, str]], paths: dict[str, Path]) -> list[Defect]:
    """One warning if the text is in two splits (leakage), one if it is tagged two ways, and one per
    extra exact copy (text and tags) within a split."""
    first, preview = group[0][0], text[:TEXT_PREVIEW]
    others = ", ".join(f"{_place(s, paths)} ({split})" for s, split in group[1 : 1 + MAX_OTHER_PLACES])
    defects = []
    splits = sorted({split for _, split in group})
    if len(splits) > 1:
        message = f"same text in splits {'/'.join(splits)} ({len(group)} sentences; also {others}): {preview!r}"
        defects.append(Defect(str(paths[first.source]), first.line, "split_leakage", message, "warning"))
    taggings = {tuple(s.tags) for s, _ in group}
    if len(taggings) > 1:
        message = f"same text tagged {len(taggings)} ways ({len(group)} sentences; also {others}): {preview!r}"
        defects.append(Defect(str(paths[first.source]), first.line, "conflicting_tags", message, "warning"))
    copies: dict[tuple[str, tuple[str, ...]], Sentence] = {}
    for sentence, split in group:
        original = copies.setdefault((split, tuple(sentence.tags)), sentence)
        if original is not sentence:
            message = f"exact duplicate (text and tags) of {_place(original, paths)} in split {split}"
            defects.append(Defect(str(paths[sentence.source]), sentence.line, "duplicate_in_split", message, "warning"))
    return defects
