"""validate: check every corpus file, repair or reject what the policy allows, stop on the rest.

Python checks name the file and line of each defect (the readers' format checks, BIO transitions
under the repair policy in params.yaml, genres, ids, control characters, split leakage and
duplicates); the great-expectations suites (healthner/corpus/expectations.py) then check the canonical
table again and publish Data Docs. Nothing is dropped silently: per file and in total,
sentences in = sentences out + sentences rejected (+ sentences failed, non-zero only on failure).

The DVC stage checks the configured corpus and writes the pipeline's outputs (the report, Data
Docs, the validated corpus). Checking anything else (`--corpus-dir OTHER`, or given files) writes
nothing unless asked (`Outputs`), so it can never replace or delete the pipeline's files.
"""

from __future__ import annotations

import json
import logging
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from healthner.config import Params
from healthner.corpus.expectations import NO_GX, ChecksExtraMissing, GxOutcome, gx_installed, run_suites
from healthner.corpus.formats import read_corpus_file
from healthner.corpus.labels import OUTSIDE, repair_bio, spans
from healthner.corpus.readers import Defect, Sentence, write_sentences
from healthner.errors import HealthnerError
from healthner.sections.corpus import CorpusFile

log = logging.getLogger(__name__)

Outcome = Literal["out", "rejected", "failed"]
BIO_SEVERITY = {"conlleval": "repaired", "reject": "rejected", "fail": "error"}
BIO_ACTION = {
    "conlleval": "read as the start of an entity (conlleval), rewritten to {fixed}",
    "reject": "sentence rejected (validate.bio_repair: reject)",
    "fail": "invalid BIO transition (validate.bio_repair: fail)",
}
# the step's own checks, listed in the report even when nothing was found (reader checks appear when found)
STAGE_CHECKS = (
    "bio_transition", "unknown_genre", "duplicate_id", "control_char",
    "split_leakage", "duplicate_in_split", "conflicting_tags", "gx_expectation",
)
SEVERITY_ORDER = ("error", "rejected", "repaired", "warning")
MISSING_FOLDER = "corpus folder not found (data.corpus_dir or --corpus-dir)"
MAX_OTHER_PLACES = 3  # other occurrences named in one leakage / duplicate message
TEXT_PREVIEW = 40  # characters of a sentence quoted in a message


@dataclass(frozen=True)
class Outputs:
    """Where a run writes; None: not written (Data Docs then go to a temporary folder, removed after)."""

    report: Path | None = None
    corpus: Path | None = None
    data_docs: Path | None = None


class ValidationFailed(HealthnerError):
    """Hard defects were found; `defects` holds each one (str(defect) -> 'FILE:LINE: what is wrong') and
    `details` the first validate.max_examples of them as lines, for the CLI to print above its one line."""

    def __init__(self, defects: list[Defect], report: ValidationReport, shown: int) -> None:
        self.defects, self.report = defects, report
        lines = [str(d) for d in defects[:shown]]
        if len(defects) > shown:
            where = f" (see {report.report_path})" if report.report_path else ""
            lines.append(f"... and {len(defects) - shown} more{where}")
        self.details = tuple(lines)
        super().__init__(f"validation failed: {len(defects)} hard defect(s)")


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
class ValidationReport:
    status: Literal["passed", "failed"]
    corpus_dir: str
    bio_repair: str
    files: dict[str, FileStats]
    checks: dict[str, dict[str, Any]]
    totals: dict[str, Any]
    gx: dict[str, Any]
    report_path: Path | None
    output_path: Path | None = None

    def summary(self) -> str:
        """Four lines for a person: the balance of sentences, what was found, GX, where the outputs are."""
        t = self.totals
        found = ", ".join(f"{name} {c['count']} ({c['severity']})" for name, c in self.checks.items() if c["count"])
        gx = self.gx.get("statistics", {})
        met = sum(s["successful_expectations"] for s in gx.values())
        total = sum(s["evaluated_expectations"] for s in gx.values())
        gx_line = (
            f"GX {met}/{total} expectations met, Data Docs {self.gx['data_docs'] or 'not written'}"
            if gx
            else f"GX not run: {self.gx.get('skipped', 'no result')}"
        )
        return "\n".join(
            [
                (f"validation {self.status}: {len(self.files)} files, {t['sentences_in']} sentences in = "
                 f"{t['sentences_out']} out + {t['sentences_rejected']} rejected + {t['sentences_failed']} failed; "
                 f"{t['entities']} entities, {t['characters']} characters"),
                f"checks: {found or 'nothing found'}",
                gx_line,
                f"report {self.report_path or 'not written'}" + (f", corpus {self.output_path}" if self.output_path else ""),
            ]
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["report_path"] = str(self.report_path) if self.report_path else None
        data["output_path"] = str(self.output_path) if self.output_path else None
        return data


@dataclass
class _FileRun:
    """One file on its way through the checks."""

    entry: CorpusFile
    path: Path
    stats: FileStats
    sentences: list[Sentence] = field(default_factory=list)  # the sentences out so far
    defects: list[Defect] = field(default_factory=list)


def char_line(sentence: Sentence, index: int, fmt: str) -> int:
    """The file line of a sentence's character: its own line in CoNLL, the sentence's line in JSON lines."""
    return sentence.line + index if fmt == "conll" else sentence.line


def configured_files(params: Params, corpus_dir: Path) -> list[tuple[CorpusFile, Path]]:
    """params.yaml's data.files, taken from `corpus_dir`."""
    return [(entry, corpus_dir / entry.name) for entry in params.data.enabled_files]


def read_files(files: Sequence[tuple[CorpusFile, Path]], corpus_dir: Path | None) -> tuple[list[_FileRun], list[Defect]]:
    """Read every file; a missing corpus folder (when reading one) is one defect naming it."""
    if corpus_dir is not None and not corpus_dir.is_dir():
        return [], [Defect(str(corpus_dir), 0, "file_missing", MISSING_FOLDER, "error")]
    runs = []
    for entry, path in files:
        read = read_corpus_file(path, entry)
        rejected = sum(d.severity == "rejected" for d in read.defects)  # readers: one defect per rejected sentence
        failed = read.sentences_seen - len(read.sentences) - rejected  # dropped by the reader for a hard defect
        stats = FileStats(entry.name, str(path), entry.format, read.sentences_seen, 0, rejected, failed)
        runs.append(_FileRun(entry, path, stats, read.sentences, list(read.defects)))
    return runs, []


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
    sentence: Sentence, run: _FileRun, params: Params, genres: set[str]
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


def check_file(run: _FileRun, params: Params, genres: set[str], seen_ids: dict[str, str]) -> None:
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


def gx_defects(outcome: GxOutcome) -> list[Defect]:
    """A hard defect per failed expectation (the Python checks should have caught it first)."""
    return [
        Defect(
            str(outcome.data_docs_index),
            0,
            "gx_expectation",
            f"GX {e['suite']}: {e['expectation']} {e['columns']} failed on {e['unexpected_count']} of "
            f"{e['element_count']} rows, e.g. {e['unexpected_examples'][:MAX_OTHER_PLACES]}",
            "error",
        )
        for e in outcome.failures()
    ]


def summarise_checks(defects: Sequence[Defect], max_examples: int) -> dict[str, dict[str, Any]]:
    """Per check: its severity, how many, and the first examples as 'FILE:LINE: message'."""
    checks: dict[str, dict[str, Any]] = {name: {"severity": None, "count": 0, "examples": []} for name in STAGE_CHECKS}
    for defect in defects:
        entry = checks.setdefault(defect.check, {"severity": None, "count": 0, "examples": []})
        if entry["severity"] is None or SEVERITY_ORDER.index(defect.severity) < SEVERITY_ORDER.index(entry["severity"]):
            entry["severity"] = defect.severity
        entry["count"] += 1
        if len(entry["examples"]) < max_examples:
            entry["examples"].append(str(defect))
    return checks


def totals(runs: Sequence[_FileRun], defects: Sequence[Defect]) -> dict[str, Any]:
    """Sums over the files, checked: sentences in = out + rejected + failed, per file and in total."""
    keys = ("sentences_in", "sentences_out", "sentences_rejected", "sentences_failed", "entities", "characters")
    total = {key: sum(getattr(r.stats, key) for r in runs) for key in keys}
    for stats in [r.stats for r in runs] + [FileStats("total", "", "", **total)]:
        balance = stats.sentences_out + stats.sentences_rejected + stats.sentences_failed
        if stats.sentences_in != balance:
            raise RuntimeError(f"{stats.name}: {stats.sentences_in} sentences in but {balance} accounted for (a bug)")
    total["reconciled"] = True
    total["defects"] = dict(Counter(d.severity for d in defects))
    return total


def write_report(report: ValidationReport) -> None:
    if report.report_path is None:
        return
    report.report_path.parent.mkdir(parents=True, exist_ok=True)
    report.report_path.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def pipeline_outputs(params: Params) -> Outputs:
    cfg = params.validation
    return Outputs(cfg.report, cfg.output, cfg.data_docs_dir)


def run_gx(sentences: list[Sentence], genres: set[str], data_docs: Path | None) -> tuple[dict[str, Any], list[Defect]]:
    """The GX suites; their Data Docs in `data_docs`, or in a temporary folder removed afterwards.
    Without great-expectations (the optional `[checks]` extra) the suites are skipped with a logged
    note, unless Data Docs were asked for: those only GX writes, so that is an error."""
    if not gx_installed():
        if data_docs is not None:
            raise ChecksExtraMissing(f"Data Docs ({data_docs}) need great-expectations: pip install 'healthner[checks]'")
        log.warning("validate: GX suites skipped: %s; the Python checks ran", NO_GX)
        return {"skipped": NO_GX}, []
    if data_docs is not None:
        outcome = run_suites(sentences, genres, data_docs)
        return outcome.as_dict(), gx_defects(outcome)
    with tempfile.TemporaryDirectory(prefix="healthner-gx-") as folder:
        outcome = run_suites(sentences, genres, Path(folder))
        return {**outcome.as_dict(), "data_docs": None}, gx_defects(outcome)


def validate(
    params: Params,
    corpus_dir: Path | None = None,
    outputs: Outputs | None = None,
    files: Sequence[tuple[CorpusFile, Path]] | None = None,
) -> ValidationReport:
    """The DVC `validate` stage, `healthner validate --corpus-dir DIR` and `healthner validate FILE...`.

    Checks `files` if given, else params.yaml's files in `corpus_dir` (default data.corpus_dir).
    `outputs` default: the pipeline's own for the configured corpus, nothing for anything else.
    Writes the report (when asked) in every case, the validated corpus (when asked) only when no
    hard defect was found (removing a stale one otherwise), then raises ValidationFailed on hard defects.
    """
    cfg = params.validation
    own = files is None and corpus_dir is None
    folder = None if files is not None else Path(corpus_dir) if corpus_dir is not None else params.data.corpus_dir
    outputs = outputs if outputs is not None else pipeline_outputs(params) if own else Outputs()
    runs, defects = read_files(files if files is not None else configured_files(params, folder), folder)
    genres, seen_ids = set(cfg.genres), {}
    for run in runs:
        check_file(run, params, genres, seen_ids)
        defects += run.defects
    sentences = [s for run in runs for s in run.sentences]
    defects += split_defects(sentences, params, {run.entry.name: run.path for run in runs})
    gx: dict[str, Any] = {"skipped": "hard defects found by the Python checks"}
    if not any(d.severity == "error" for d in defects):
        gx, found = run_gx(sentences, genres, outputs.data_docs)
        defects += found
    hard = [d for d in defects if d.severity == "error"]
    report = ValidationReport(
        status="failed" if hard else "passed",
        corpus_dir=str(folder) if folder is not None else ", ".join(str(path) for _, path in files or []),
        bio_repair=cfg.bio_repair,
        files={run.entry.name: run.stats for run in runs},
        checks=summarise_checks(defects, cfg.max_examples),
        totals=totals(runs, defects),
        gx=gx,
        report_path=outputs.report,
        output_path=None if hard else outputs.corpus,
    )
    write_report(report)
    log.info("validate: %s, %d sentences in, %d hard defect(s)", report.status, report.totals["sentences_in"], len(hard))
    if hard:
        if outputs.corpus is not None:
            outputs.corpus.unlink(missing_ok=True)
        raise ValidationFailed(hard, report, cfg.max_examples)
    if outputs.corpus is not None:
        write_sentences(sentences, outputs.corpus)
    return report
