"""Which reader reads each `data.files` format, and the entry a file named on the command line gets.

A format whose records carry no genre (CoNLL, a Label Studio export) is read with the genre its
data.files entry states (sections.corpus.CorpusFile requires one); HealthNER JSON lines carry their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from healthner.corpus.labelstudio import read_labelstudio_json
from healthner.corpus.readers import ReadResult, read_conll, read_healthner_jsonl
from healthner.errors import HealthnerError
from healthner.sections.corpus import GENRE_IN_RECORDS, CorpusFile, CorpusFormat

# files named on the command line without --format
FORMAT_BY_SUFFIX = {".jsonl": "healthner_jsonl", ".txt": "conll", ".conll": "conll", ".json": "labelstudio_json"}


def read_corpus_file(path: Path, entry: CorpusFile) -> ReadResult:
    """Every sentence of the file at `path`, read as its data.files `entry` says, and every defect seen."""
    if entry.format == "conll":
        return read_conll(path, entry.genre)
    if entry.format == "labelstudio_json":
        return read_labelstudio_json(path, entry.genre)
    return read_healthner_jsonl(path)


def given_files(paths: Sequence[Path], fmt: str | None = None, genre: str | None = None) -> list[tuple[CorpusFile, Path]]:
    """Files named on the command line; the format from `fmt` or else from each file's extension, the
    genre from `genre` for a format whose records carry none (never from the file name)."""
    pairs = []
    for path in paths:
        chosen = fmt or FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())
        if chosen is None:
            known = ", ".join(FORMAT_BY_SUFFIX)
            raise HealthnerError(f"{path}: cannot tell the format from the extension ({known}); pass --format")
        if chosen not in get_args(CorpusFormat):
            raise HealthnerError(f"--format {chosen!r}: expected one of {', '.join(get_args(CorpusFormat))}")
        if chosen not in GENRE_IN_RECORDS and not genre:
            raise HealthnerError(f"{path}: a {chosen} file carries no genre; pass --genre (one of validate.genres)")
        entry = CorpusFile(name=Path(path).name, format=chosen, genre=None if chosen in GENRE_IN_RECORDS else genre)
        pairs.append((entry, Path(path)))
    return pairs
