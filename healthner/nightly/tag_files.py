"""`healthner tag`: articles from files, a folder, a glob or stdin, tagged into one output file and
its rejects file.

Streaming: records are read one at a time (nightly/inputs.py), tagged `nightly.chunk_articles` at a
time and written as each chunk is done (nightly/outputs.py), so memory stays flat however large the
input. Both files are written under temporary names beside their targets and installed together
at the end (`install_together`): a failure before or during the install leaves the previous pair
as it was and no temporary behind. The output may not be an input (or inside an input folder), so
tagging never destroys what it reads.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from healthner.config import Params
from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import HealthnerError, InputFormatError
from healthner.nightly.inbox import Article, Reject
from healthner.nightly.inputs import InputFile, RecordStream, input_bytes, input_files
from healthner.nightly.outputs import FORMATS, WRITERS, RejectsWriter, Tagged, format_for
from healthner.nightly.pool import TaggerPool, closing_pool, load_tagging
from healthner.nightly.tagger import Entity, Tagger

log = logging.getLogger(__name__)


class OutputError(HealthnerError):
    """The output cannot be written where asked; the previous output files are left as they were."""


@dataclass(frozen=True)
class EntityFilter:
    """Which entities are written: at least `min_score`, and of `types` (None: every type)."""

    min_score: float = 0.0
    types: frozenset[str] | None = None

    @classmethod
    def of(cls, min_score: float | None, types: Iterable[str] | None) -> EntityFilter:
        """From the CLI's --min-score and --types (comma-separated or repeated); unknown types refused."""
        chosen = {t.strip().upper() for item in types or [] for t in item.split(",") if t.strip()}
        unknown = sorted(chosen - set(ENTITY_TYPES))
        if unknown:
            raise InputFormatError(f"--types: unknown type(s) {', '.join(unknown)}; known: {', '.join(ENTITY_TYPES)}")
        if min_score is not None and not 0.0 <= min_score <= 1.0:
            raise InputFormatError(f"--min-score {min_score}: must be between 0 and 1")
        return cls(min_score or 0.0, frozenset(chosen) or None)

    def keep(self, entities: Sequence[Entity]) -> list[Entity]:
        return [e for e in entities if e.score >= self.min_score and (self.types is None or e.type in self.types)]


@dataclass(frozen=True)
class TagFileSummary:
    read: int
    tagged: int
    rejected: int
    entities: int
    left_out: int  # entities found but filtered out (--min-score, --types)
    model_version: str
    output: str
    rejects: str

    def __str__(self) -> str:
        kept = f"{self.entities} entities" + (f" ({self.left_out} more left out by the filters)" if self.left_out else "")
        return (f"read {self.read}: tagged {self.tagged}, rejected {self.rejected}; {kept} "
                f"(model {self.model_version}) -> {self.output}; rejects -> {self.rejects}")


def rejects_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejects.parquet")


def refuse_overwriting_inputs(files: Sequence[InputFile], spec: str | Path, targets: Sequence[Path]) -> None:
    """Neither output file may be an input file, lie inside the input folder, or be a folder."""
    folder = Path(spec).resolve() if str(spec) != "-" and Path(spec).is_dir() else None
    inputs = {f.path.resolve() for f in files if f.path is not None}
    for target in targets:
        resolved = target.resolve()
        if resolved in inputs:
            raise OutputError(f"--output {target} is an input file: tagging would overwrite it; choose another path")
        if folder is not None and resolved.is_relative_to(folder):
            raise OutputError(f"--output {target} is inside the input folder {spec}; choose a path outside it")
        if target.is_dir():
            raise OutputError(f"{target}: is a folder; --output (and its .rejects.parquet) must be a file path")


def chunks_of(stream: Iterable[Article | Reject], size: int, rejects: RejectsWriter) -> Iterator[list[Article]]:
    """Articles in lists of `size`; rejects go to `rejects` as they come."""
    chunk: list[Article] = []
    for outcome in stream:
        if isinstance(outcome, Reject):
            rejects.add(outcome)
            continue
        chunk.append(outcome)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tag_chunks(tagger: Tagger | TaggerPool, chunks: Iterable[list[Article]]) -> Iterator[list[Tagged]]:
    """Each chunk with its entities, with a progress bar on a terminal."""
    with tqdm(desc="tag", unit="article", disable=None) as bar:
        for chunk in chunks:
            yield list(zip(chunk, tagger.tag([a.text for a in chunk]), strict=True))
            bar.update(len(chunk))


def staging_name(target: Path, run: str) -> Path:
    return target.with_name(f".{target.name}.{run[:12]}.tmp")


def install_together(staged: dict[Path, Path]) -> None:
    """Rename each staged file (target -> temporary) over its target. When a rename fails, the
    targets already replaced get their previous file back (kept as a hard link, or a copy, until
    the end) and a target that did not exist is removed again, so the pair is the old one or the
    new one, never a mix. Temporaries and backups are removed in every case."""
    backups: dict[Path, Path] = {}
    installed: list[Path] = []
    current = next(iter(staged))
    try:
        for current, temporary in staged.items():
            if current.is_file():
                backups[current] = _backup(current, temporary)
        for current, temporary in staged.items():
            os.replace(temporary, current)
            installed.append(current)
    except OSError as exc:
        for target in installed:
            if target in backups:
                os.replace(backups.pop(target), target)
            else:
                target.unlink(missing_ok=True)
        raise OutputError(f"{current}: cannot write ({exc.strerror or exc}); the previous output files are left as "
                          "they were") from None
    finally:
        for path in [*staged.values(), *backups.values()]:
            path.unlink(missing_ok=True)


def _backup(target: Path, temporary: Path) -> Path:
    backup = temporary.with_suffix(".bak")
    try:
        os.link(target, backup)
    except OSError:
        shutil.copy2(target, backup)
    return backup


def tag_files(
    params: Params,
    model_dir: Path,
    input: str | Path,
    output: Path,
    format: str | None = None,
    keep: EntityFilter | None = None,
    tagger: Tagger | TaggerPool | None = None,
) -> TagFileSummary:
    """Tag `input` (a file, folder, glob or `-`) into `output` in `format` (default: by the output's
    suffix, else parquet) and the rejects, with their reasons, into `<stem>.rejects.parquet`.
    Without a `tagger`, a large input is tagged by a pool of processes (tag.workers)."""
    output, keep = Path(output), keep or EntityFilter()
    chosen = format_for(output, format)
    if chosen not in FORMATS:
        raise InputFormatError(f"--format {chosen}: one of {', '.join(FORMATS)}")
    files = input_files(input)
    targets = [output, rejects_path(output)]
    refuse_overwriting_inputs(files, input, targets)
    nightly = params.nightly
    stream = RecordStream(files, nightly.max_article_chars, nightly.max_article_id_chars, nightly.chunk_articles)
    run = uuid.uuid4().hex
    staged = {target: staging_name(target, run) for target in targets}
    output.parent.mkdir(parents=True, exist_ok=True)
    size = input_bytes(files)
    try:
        with closing_pool(tagger or load_tagging(model_dir, params.tag, size), own=tagger is None) as used:
            counts = _write(used, stream, staged[output], staged[targets[1]], chosen, keep, run.encode(),
                            nightly.chunk_articles)
            model_version = used.model_version
        install_together(staged)
    finally:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
    tagged, rejected, written, left_out = counts
    log.info("tag %s: %d record(s) read, %d article(s), %d reject(s)", input, stream.read, tagged, rejected)
    return TagFileSummary(stream.read, tagged, rejected, written, left_out, model_version, str(output),
                          str(rejects_path(output)))


def _write(
    tagger: Tagger | TaggerPool, stream: RecordStream, output: Path, rejects_file: Path, fmt: str, keep: EntityFilter,
    run: bytes, chunk_articles: int,
) -> tuple[int, int, int, int]:
    """(articles tagged, rejects, entities written, entities left out), streamed into `output` (in
    `fmt`) and `rejects_file` as the chunks are tagged."""
    rejects = RejectsWriter(rejects_file, run, chunk_articles)
    writer = WRITERS[fmt](output, tagger.model_version, run)
    tagged = written = left_out = 0
    try:
        for chunk in tag_chunks(tagger, chunks_of(stream, chunk_articles, rejects)):
            kept = [(article, keep.keep(found)) for article, found in chunk]
            writer.write(kept)
            tagged += len(chunk)
            written += sum(len(found) for _, found in kept)
            left_out += sum(len(found) for _, found in chunk) - sum(len(found) for _, found in kept)
    finally:
        writer.close()
        rejects.close()
    return tagged, rejects.count, written, left_out
