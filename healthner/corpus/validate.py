"""validate: check every corpus file, repair or reject what the policy allows, stop on the rest.

Python checks name the file and line of each defect (the readers' format checks, then those of
healthner/corpus/checks.py: BIO transitions under the repair policy in params.yaml, genres, ids,
control characters, split leakage and duplicates); the great-expectations suites
(healthner/corpus/expectations.py) then check the canonical table again and publish Data Docs.
Nothing is dropped silently: per file and in total, sentences in = sentences out + sentences
rejected (+ sentences failed, non-zero only on failure).

The DVC stage checks the configured corpus and writes the pipeline's outputs (the report, Data
Docs, the validated corpus). Checking anything else (`--corpus-dir OTHER`, or given files) writes
nothing unless asked (`Outputs`), so it can never replace or delete the pipeline's files.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from healthner.config import Params
from healthner.corpus.checks import MAX_OTHER_PLACES, FileRun, FileStats, check_file, split_defects
from healthner.corpus.expectations import NO_GX, ChecksExtraMissing, GxOutcome, gx_installed, run_suites
from healthner.corpus.formats import read_corpus_file
from healthner.corpus.readers import Defect, Sentence, write_sentences
from healthner.errors import HealthnerError
from healthner.sections.corpus import CorpusFile

log = logging.getLogger(__name__)

# the step's own checks, listed in the report even when nothing was found (reader checks appear when found)
STAGE_CHECKS = (
    "bio_transition", "unknown_genre", "duplicate_id", "control_char",
    "split_leakage", "duplicate_in_split", "conflicting_tags", "gx_expectation",
)
SEVERITY_ORDER = ("error", "rejected", "repaired", "warning")
MISSING_FOLDER = "corpus folder not found (data.corpus_dir or --corpus-dir)"


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


def configured_files(params: Params, corpus_dir: Path) -> list[tuple[CorpusFile, Path]]:
    """params.yaml's data.files, taken from `corpus_dir`."""
    return [(entry, corpus_dir / entry.name) for entry in params.data.enabled_files]


def read_files(files: Sequence[tuple[CorpusFile, Path]], corpus_dir: Path | None) -> tuple[list[FileRun], list[Defect]]:
    """Read every file; a missing corpus folder (when reading one) is one defect naming it."""
    if corpus_dir is not None and not corpus_dir.is_dir():
        return [], [Defect(str(corpus_dir), 0, "file_missing", MISSING_FOLDER, "error")]
    runs = []
    for entry, path in files:
        read = read_corpus_file(path, entry)
        rejected = sum(d.severity == "rejected" for d in read.defects)  # readers: one defect per rejected sentence
        failed = read.sentences_seen - len(read.sentences) - rejected  # dropped by the reader for a hard defect
        stats = FileStats(entry.name, str(path), entry.format, read.sentences_seen, 0, rejected, failed)
        runs.append(FileRun(entry, path, stats, read.sentences, list(read.defects)))
    return runs, []


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


def totals(runs: Sequence[FileRun], defects: Sequence[Defect]) -> dict[str, Any]:
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
