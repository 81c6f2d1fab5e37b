"""`healthner tag`'s input: a file, a folder, a glob or `-` (stdin), read one record at a time.

Formats, by file suffix (any case):
- `.parquet`: a table with `article_id` and `text` (and optionally title, source, url,
  published_at); read in row batches; row n is located `name:n`;
- `.txt`: one article per file, the whole file its text (UTF-8) and the file name's stem its id;
- anything else given by name, and stdin: JSON lines, one article a line (the nightly inbox's rules).
A folder is every `.jsonl`, `.parquet` and `.txt` file under it (subfolders included); any other
file there is one `not_jsonl` reject, so nothing in it goes uncounted. Nothing is held but the
current record or batch, so memory does not grow with the input (the ids seen, for duplicates,
excepted).
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from healthner.errors import InputFormatError
from healthner.nightly.inbox import (
    INVALID_UTF8,
    NOT_JSONL,
    TOO_LONG,
    UTF8_BOM,
    Article,
    InboxRead,
    Reject,
    check_record,
    line_outcome,
    safe_text,
)
from healthner.nightly.warehouse import ARTICLE_META
from healthner.sections.tagging import NightlyParams

STDIN = "-"
JSONL, PARQUET, TXT = ".jsonl", ".parquet", ".txt"
FOLDER_SUFFIXES = (JSONL, PARQUET, TXT)
GLOB_CHARS = "*?["
UTF8_MAX_BYTES = 4  # bytes per character at most: a .txt file larger than 4 x the cap is too long unread
RECORD_COLUMNS = ("article_id", "text", *ARTICLE_META)


@dataclass(frozen=True)
class InputFile:
    path: Path | None  # None: stdin
    name: str  # how locations name it: the path below a given folder, else the file name
    suffix: str  # how it is read: JSONL, PARQUET, TXT, or "" for a folder's unreadable kind


@dataclass
class RecordStream:
    """Every record of the inputs in order; `read` counts records (non-blank lines, rows, files)."""

    files: list[InputFile]
    max_chars: int
    max_id_chars: int
    batch_rows: int
    read: int = 0
    accepted: set[str] = field(default_factory=set)

    def __iter__(self) -> Iterator[Article | Reject]:
        for source in self.files:
            for outcome in self._records(source):
                self.read += 1
                yield outcome

    def _records(self, source: InputFile) -> Iterator[Article | Reject]:
        if source.path is None:
            yield from self._lines(sys.stdin.buffer, source.name)
        elif source.suffix == PARQUET:
            yield from self._rows(source)
        elif source.suffix == TXT:
            yield self._article_file(source)
        elif source.suffix == JSONL:
            with _open(source.path) as fh:
                yield from self._lines(fh, source.name)
        else:
            yield Reject(None, f"{safe_text(source.name)}:0", NOT_JSONL, "not a .jsonl, .parquet or .txt file; not read")

    def _lines(self, fh: BinaryIO, name: str) -> Iterator[Article | Reject]:
        """JSON lines cut at LF (a CR before it dropped); a UTF-8 BOM before the first is skipped."""
        name = safe_text(name)
        for number, raw in enumerate(fh, start=1):
            line = raw.removesuffix(b"\n").removesuffix(b"\r")
            if number == 1:
                line = line.removeprefix(UTF8_BOM)
            if line.strip():
                yield line_outcome(line, f"{name}:{number}", self.max_chars, self.accepted, self.max_id_chars)

    def _rows(self, source: InputFile) -> Iterator[Article | Reject]:
        try:
            table = pq.ParquetFile(source.path)
            columns = [c for c in RECORD_COLUMNS if c in table.schema_arrow.names]
            batches = table.iter_batches(batch_size=self.batch_rows, columns=columns)
            number = 0
            for batch in batches:
                for row in batch.to_pylist():
                    number += 1
                    yield check_record(row, f"{safe_text(source.name)}:{number}", self.max_chars, self.accepted,
                                       self.max_id_chars)
        except (OSError, pa.ArrowException) as exc:
            raise InputFormatError(f"{source.path}: not a readable Parquet table: {exc}") from exc

    def _article_file(self, source: InputFile) -> Article | Reject:
        """A .txt file is one article: its stem is the id, its UTF-8 text the article."""
        location, record = f"{safe_text(source.name)}:1", {"article_id": source.path.stem}
        size = source.path.stat().st_size
        if size > UTF8_MAX_BYTES * self.max_chars + len(UTF8_BOM):
            return Reject(safe_text(source.path.stem), location, TOO_LONG, f"{size} bytes: over {self.max_chars} characters")
        raw = source.path.read_bytes().removeprefix(UTF8_BOM)
        try:
            record["text"] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Reject(safe_text(source.path.stem), location, INVALID_UTF8, f"invalid UTF-8 at byte {exc.start + 1}")
        return check_record(record, location, self.max_chars, self.accepted, self.max_id_chars)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def input_files(spec: str | Path) -> list[InputFile]:
    """The files `spec` names: `-` (stdin), a file (read by its suffix, JSON lines unless .parquet or
    .txt), a folder (every file under it) or a glob (the files it matches)."""
    text = str(spec)
    if text == STDIN:
        return [InputFile(None, "<stdin>", JSONL)]
    path = Path(text)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
        return [InputFile(p, p.relative_to(path).as_posix(), _folder_kind(p)) for p in found]
    if path.is_file():
        return [InputFile(path, path.name, _file_kind(path))]
    if any(char in text for char in GLOB_CHARS):
        matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if matched:
            return [InputFile(p, p.name, _file_kind(p)) for p in matched]
        raise InputFormatError(f"{text}: no file matches this pattern")
    raise InputFormatError(f"{path}: input file not found")


def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if suffix in (PARQUET, TXT) else JSONL


def _folder_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if suffix in FOLDER_SUFFIXES else ""


def input_bytes(files: list[InputFile]) -> int | None:
    """Bytes of every input file (a bound on its characters); None when one is stdin (unknown)."""
    if any(f.path is None for f in files):
        return None
    return sum(f.path.stat().st_size for f in files)


def read_input(
    spec: str | Path, max_chars: int, max_id_chars: int = NightlyParams().max_article_id_chars, batch_rows: int = 1024
) -> InboxRead:
    """Every record of `spec` at once (small inputs, tests): articles, rejects and records read."""
    stream = RecordStream(input_files(spec), max_chars, max_id_chars, batch_rows)
    result = InboxRead([], [], 0)
    for outcome in stream:
        (result.rejects if isinstance(outcome, Reject) else result.articles).append(outcome)
    result.lines_read = stream.read
    return result
