"""The canonical sentence record and the readers for each corpus format.

Readers never stop at the first problem: they return every sentence they could read and every
defect they saw, each naming its file and line, and leave the verdict to the validate step.
Characters are kept exactly as in the file (no normalisation), so offsets stay true. A JSON line
that the decoder cannot take (nesting too deep, a number too long for Python's int) or that holds
a lone surrogate escape ("\\ud800", which UTF-8 and so Parquet cannot store) is a defect at its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.corpus.labels import TAG_TO_ID

Severity = Literal["error", "repaired", "rejected", "warning"]
UTF8_BOM = b"\xef\xbb\xbf"
JSONL_KEYS = ("id", "genre", "sentence", "character", "character_label")
LINE_DROPPING_CHECKS = ("lone_cr", "invalid_utf8")  # defects after which _decoded_lines skips the line
JSONL_TEXT_FIELDS = ("id", "genre", "sentence")  # scalar fields; "character" / "character_label" are lists of strings


def first_surrogate(value: str) -> int | None:
    """Index of the first lone surrogate in `value` (JSON lets "\\ud800" through; UTF-8 does not), or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def json_error(exc: Exception) -> str:
    """What the decoder's exception says, on one line, for any way json.loads fails on one line."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply to decode"
    return str(exc).split(":")[0]  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"


def loads_line(text: str) -> tuple[Any, str | None]:
    """(value, None), or (None, why) when json.loads fails: JSONDecodeError, RecursionError, ValueError."""
    try:
        return json.loads(text), None
    except (RecursionError, ValueError) as exc:  # JSONDecodeError is a ValueError, as is the int-digits limit
        return None, json_error(exc)


@dataclass
class Sentence:
    sent_id: str
    source: str  # file name
    genre: str
    line: int  # first line of the sentence in its file (1-based)
    chars: list[str]
    tags: list[str]

    @property
    def text(self) -> str:
        return "".join(self.chars)


@dataclass(frozen=True)
class Defect:
    path: str
    line: int  # 0 when the defect concerns the whole file
    check: str
    message: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class ReadResult:
    sentences: list[Sentence] = field(default_factory=list)
    defects: list[Defect] = field(default_factory=list)
    sentences_seen: int = 0  # sentences found in the file, including rejected ones


def read_raw(path: Path, result: ReadResult) -> bytes | None:
    """The file's bytes without a UTF-8 BOM, or None; a missing, unreadable or empty file and a BOM become defects."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        result.defects.append(Defect(str(path), 0, "file_missing", "file not found", "error"))
        return None
    except OSError as exc:
        result.defects.append(Defect(str(path), 0, "file_unreadable", f"cannot read file: {exc}", "error"))
        return None
    if not raw.strip():
        result.defects.append(Defect(str(path), 0, "file_empty", "file is empty", "error"))
        return None
    if raw.startswith(UTF8_BOM):
        result.defects.append(Defect(str(path), 1, "bom", "UTF-8 byte-order mark removed", "repaired"))
        raw = raw[len(UTF8_BOM) :]
    return raw


def _decoded_lines(path: Path, result: ReadResult) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each line, splitting on LF only and dropping one CR before it.

    Bad bytes, a BOM, lone CRs and an empty or unreadable file become defects naming the line.
    """
    raw = read_raw(path, result)
    if raw is None:
        return
    pieces = raw.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the terminator of the last line
    for number, piece in enumerate(pieces, start=1):
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if b"\r" in piece:
            result.defects.append(
                Defect(str(path), number, "lone_cr", "carriage return (CR) inside a line, not before LF", "error")
            )
            continue
        try:
            yield number, piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.defects.append(
                Defect(str(path), number, "invalid_utf8", f"invalid UTF-8 bytes at column {exc.start + 1}", "error")
            )


def _check_tokens(path: Path, line: int, chars: list[str], tags: list[str], result: ReadResult) -> bool:
    """One character per token and a known tag; record a defect per bad token."""
    ok = True
    for char, tag in zip(chars, tags):
        if len(char) != 1:
            result.defects.append(
                Defect(str(path), line, "token_not_one_char", f"token {char!r} is not exactly one character", "error")
            )
            ok = False
        if tag not in TAG_TO_ID:
            result.defects.append(Defect(str(path), line, "unknown_tag", f"unknown tag {tag!r}", "error"))
            ok = False
    return ok


def _parse_conll_line(path: Path, number: int, text: str, result: ReadResult) -> tuple[str, str] | None:
    """'CHAR TAG' -> (char, tag). The character may itself be a space, so split on the last space."""
    char, sep, tag = text.rpartition(" ")
    if not sep:
        result.defects.append(Defect(str(path), number, "field_count", f"missing tag: {text!r}", "error"))
        return None
    if len(char) != 1:
        fields = len(text.split(" "))
        result.defects.append(
            Defect(str(path), number, "field_count", f"expected 'CHAR TAG' (2 fields), got {fields}: {text!r}", "error")
        )
        return None
    if not _check_tokens(path, number, [char], [tag], result):
        return None
    return char, tag


def read_conll(path: Path, genre: str) -> ReadResult:
    """CoNLL-style 'CHAR TAG' lines; a blank line (spaces allowed) ends a sentence. The file carries no
    genre: every sentence gets `genre`, the one its data.files entry states."""
    result = ReadResult()
    stem, chars, tags, start, broken = path.stem, [], [], 0, False
    previous_blank_line = 0
    defects_seen = 0

    def dropped_line() -> bool:
        """Whether _decoded_lines skipped a line since the last call: that line broke the open sentence."""
        nonlocal defects_seen
        new, defects_seen = result.defects[defects_seen:], len(result.defects)
        return any(d.check in LINE_DROPPING_CHECKS for d in new)

    def close(end_line: int) -> None:
        nonlocal chars, tags, broken
        if chars or broken:  # a sentence whose every line was bad is still a sentence seen
            result.sentences_seen += 1
            if chars and not broken:
                sid = f"{stem}:{result.sentences_seen:05d}"
                result.sentences.append(Sentence(sid, path.name, genre, start, chars, tags))
        chars, tags, broken = [], [], False

    for number, text in _decoded_lines(path, result):
        broken = dropped_line() or broken
        if not text.strip():
            if not chars and previous_blank_line == number - 1 and number > 1:
                result.sentences_seen += 1
                result.defects.append(
                    Defect(str(path), number, "empty_sentence", "empty sentence (two separators in a row)", "rejected")
                )
            close(number)
            previous_blank_line = number
            continue
        if not chars:
            start = number
        parsed = _parse_conll_line(path, number, text, result)
        if parsed is None:
            broken = True
            continue
        chars.append(parsed[0])
        tags.append(parsed[1])
    broken = dropped_line() or broken
    close(0)
    return result


def _field_problem(record: dict) -> tuple[str, str] | None:
    """(check, message) for the first field of the wrong type or holding a lone surrogate, else None."""
    id_ = record["id"]
    if isinstance(id_, bool) or not isinstance(id_, (str, int)):
        return "field_type", f"'id' must be a string or integer, got {type(id_).__name__}"
    for key in ("genre", "sentence"):
        if not isinstance(record[key], str):
            return "field_type", f"{key!r} must be a string, got {type(record[key]).__name__}"
    for key in ("character", "character_label"):
        if not isinstance(record[key], list) or not all(isinstance(x, str) for x in record[key]):
            return "field_type", f"{key!r} must be a list of strings"
    for key in (*JSONL_TEXT_FIELDS, "character", "character_label"):
        value = record[key]
        text = "".join(value) if isinstance(value, list) else str(value)
        at = first_surrogate(text)
        if at is not None:
            return "invalid_text", f"lone surrogate U+{ord(text[at]):04X} in {key!r} (not storable as UTF-8)"
    return None


def _jsonl_record(path: Path, number: int, text: str, result: ReadResult) -> Sentence | None:
    record, error = loads_line(text)
    if error is not None:
        result.defects.append(Defect(str(path), number, "json_invalid", f"invalid JSON: {error}", "error"))
        return None
    missing = [key for key in JSONL_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        result.defects.append(Defect(str(path), number, "field_count", f"missing field(s) {missing}", "error"))
        return None
    problem = _field_problem(record)
    if problem:
        result.defects.append(Defect(str(path), number, problem[0], problem[1], "error"))
        return None
    chars, tags = list(record["character"]), list(record["character_label"])
    if len(chars) != len(tags):
        result.defects.append(
            Defect(str(path), number, "length_mismatch", f"{len(chars)} characters but {len(tags)} tags", "error")
        )
        return None
    if not _check_tokens(path, number, chars, tags, result):
        return None
    if "".join(chars) != record["sentence"]:
        result.defects.append(
            Defect(str(path), number, "text_mismatch", "characters do not spell the 'sentence' field", "error")
        )
        return None
    sid = f"{path.stem}:{record['id']}"
    return Sentence(sid, path.name, str(record["genre"]).upper(), number, chars, tags)


def read_healthner_jsonl(path: Path) -> ReadResult:
    """The HealthNER JSON-lines file: one sentence object a line."""
    result = ReadResult()
    for number, text in _decoded_lines(path, result):
        if not text.strip():
            continue
        result.sentences_seen += 1
        sentence = _jsonl_record(path, number, text, result)
        if sentence is None:
            continue
        if not sentence.chars:
            result.defects.append(Defect(str(path), number, "empty_sentence", "empty sentence", "rejected"))
            continue
        result.sentences.append(sentence)
    return result


# --- the canonical table -------------------------------------------------------------------------

CANONICAL_SCHEMA = pa.schema(
    [
        ("sent_id", pa.string()),
        ("source", pa.string()),
        ("genre", pa.string()),
        ("line", pa.int32()),
        ("text", pa.string()),
        ("chars", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
    ]
)


def to_table(sentences: list[Sentence]) -> pa.Table:
    return pa.table(
        {
            "sent_id": [s.sent_id for s in sentences],
            "source": [s.source for s in sentences],
            "genre": [s.genre for s in sentences],
            "line": [s.line for s in sentences],
            "text": [s.text for s in sentences],
            "chars": [s.chars for s in sentences],
            "tags": [s.tags for s in sentences],
        },
        schema=CANONICAL_SCHEMA,
    )


def from_table(table: pa.Table) -> list[Sentence]:
    cols = table.select(["sent_id", "source", "genre", "line", "chars", "tags"]).to_pydict()
    return [Sentence(*row) for row in zip(*cols.values())]


def write_sentences(sentences: list[Sentence], path: Path, extra: dict[str, list] | None = None) -> None:
    table = to_table(sentences)
    for name, values in (extra or {}).items():
        table = table.append_column(name, pa.array(values))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def read_sentences(path: Path) -> list[Sentence]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: not found; run the step that writes it first (dvc repro)")
    return from_table(pq.read_table(path))
