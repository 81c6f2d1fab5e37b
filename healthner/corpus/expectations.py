"""The great-expectations suites of the validate step, run over the canonical table.

Two batches: one row per sentence and one row per character (the tag transition check needs the
previous tag beside each tag). The context is ephemeral (in-memory stores, no GX project folder to
keep out of git); its only output is the Data Docs site written to `data_docs_dir`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from healthner.corpus.labels import OUTSIDE, TAGS, is_valid_transition
from healthner.corpus.readers import CANONICAL_SCHEMA, Sentence
from healthner.errors import HealthnerError

DATA_DOCS_SITE = "healthner"
SCALAR_COLUMNS = [field.name for field in CANONICAL_SCHEMA if not pa.types.is_list(field.type)]
DATASOURCE = "canonical_corpus"
CHECKPOINT = "validate_corpus"
TRANSITION_JOIN = ">"
DATA_DOCS_RUN_PAGES = ("validations", "expectations")  # the site's per-run folders (GX's names)
GX_RESULT_FORMAT = "SUMMARY"  # counts plus a few unexpected values per expectation
NO_GX = "great-expectations is not installed (pip install 'healthner[checks]')"


class ChecksExtraMissing(HealthnerError):
    """Data Docs were asked for, and only the GX suites write them: the `[checks]` extra is needed."""


def gx_installed() -> bool:
    """great-expectations is the optional `[checks]` extra: the core validates without it. (Imported,
    not only looked up: the suites import it right after anyway.)"""
    try:
        import great_expectations  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


@dataclass
class GxOutcome:
    """What the suites found: their statistics, one row per expectation, and where the docs are."""

    success: bool
    data_docs_index: Path
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    expectations: list[dict[str, Any]] = field(default_factory=list)

    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.expectations if not e["success"]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "data_docs": str(self.data_docs_index),
            "statistics": self.statistics,
            "expectations": self.expectations,
        }


def sentence_frame(sentences: Sequence[Sentence]) -> pd.DataFrame:
    """One row per sentence (the canonical table's scalar columns), with the derived columns the suite compares."""
    frame = pd.DataFrame({name: [getattr(s, name) for s in sentences] for name in SCALAR_COLUMNS})
    frame["joined_chars"] = ["".join(s.chars) for s in sentences]
    frame["n_chars"] = [len(s.chars) for s in sentences]
    frame["n_tags"] = [len(s.tags) for s in sentences]
    return frame


def transition(prev: str, tag: str) -> str:
    """'O>I-DISE': one string per tag bigram, so GX checks BIO with a fast set lookup.

    (ExpectColumnPairValuesToBeInSet compares row by row in Python, which grows with every character of
    the corpus; a set lookup on one column does not.)
    """
    return f"{prev}{TRANSITION_JOIN}{tag}"


def character_frame(sentences: Sequence[Sentence]) -> pd.DataFrame:
    """One row per character: the character, its tag and the transition from the tag before it."""
    rows = [
        (s.sent_id, char, tag, transition(s.tags[i - 1] if i else OUTSIDE, tag))
        for s in sentences
        for i, (char, tag) in enumerate(zip(s.chars, s.tags))
    ]
    return pd.DataFrame(rows, columns=["sent_id", "char", "tag", "transition"])


def valid_transitions() -> list[str]:
    """Every tag bigram that strict BIO allows (a sentence starts after an implicit O)."""
    return [transition(prev, tag) for prev in TAGS for tag in TAGS if is_valid_transition(prev, tag)]


def sentence_expectations(genres: Iterable[str]) -> list[Any]:
    import great_expectations as gx

    E = gx.expectations
    return [
        E.ExpectColumnValuesToNotBeNull(column="sent_id"),
        E.ExpectColumnValuesToBeUnique(column="sent_id"),
        E.ExpectColumnValuesToBeInSet(column="genre", value_set=sorted(set(genres))),
        E.ExpectColumnValuesToBeBetween(column="n_chars", min_value=1),  # no empty sentence
        E.ExpectColumnPairValuesToBeEqual(column_A="n_chars", column_B="n_tags"),
        E.ExpectColumnPairValuesToBeEqual(column_A="text", column_B="joined_chars"),
    ]


def character_expectations() -> list[Any]:
    import great_expectations as gx

    E = gx.expectations
    return [
        E.ExpectColumnValueLengthsToEqual(column="char", value=1),  # one character per token
        E.ExpectColumnValuesToBeInSet(column="tag", value_set=list(TAGS)),
        E.ExpectColumnValuesToBeInSet(column="transition", value_set=valid_transitions()),  # strict BIO
    ]


def _context(data_docs_dir: Path) -> Any:
    """An ephemeral context whose one Data Docs site is `data_docs_dir`; no analytics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    site = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        data_docs_sites={DATA_DOCS_SITE: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _expectation_row(suite: str, result: Any) -> dict[str, Any]:
    config, found = result.expectation_config, result.result or {}
    return {
        "suite": suite,
        "expectation": config.type,
        "columns": {k: v for k, v in config.kwargs.items() if k.startswith("column")},
        "success": bool(result.success),
        "element_count": found.get("element_count"),
        "unexpected_count": found.get("unexpected_count"),
        "unexpected_examples": [str(v) for v in found.get("partial_unexpected_list") or []],
    }


def run_suites(sentences: Sequence[Sentence], genres: Iterable[str], data_docs_dir: Path) -> GxOutcome:
    """Run each suite through a Checkpoint whose action updates the Data Docs site; return the counts."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    for stale in DATA_DOCS_RUN_PAGES:  # the in-memory stores only know this run: drop older pages
        shutil.rmtree(data_docs_dir / stale, ignore_errors=True)
    context = _context(data_docs_dir)
    source = context.data_sources.add_pandas(DATASOURCE)
    frames = {"sentences": sentence_frame(sentences), "characters": character_frame(sentences)}
    suites = {"sentences": sentence_expectations(genres), "characters": character_expectations()}
    outcome = GxOutcome(success=True, data_docs_index=data_docs_dir / "index.html")
    for name, expectations in suites.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        suite = context.suites.add(gx.ExpectationSuite(name=f"corpus_{name}", expectations=expectations))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        # one checkpoint per batch: a checkpoint run passes the same dataframe to all its definitions
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{CHECKPOINT}_{name}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])],
                result_format={"result_format": GX_RESULT_FORMAT},
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frames[name]})
        for result in run.run_results.values():
            outcome.statistics[name] = dict(result.statistics)
            outcome.expectations += [_expectation_row(name, r) for r in result.results]
        outcome.success = outcome.success and bool(run.success)
    return outcome
