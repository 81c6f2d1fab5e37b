"""The Great Expectations suite over one night: run on the staged version before it is published.

Expectations that relate tables (an entity's offsets against its article's length, entity rows
against articles.n_entities, rows against lines read) run on small frames joined beforehand,
so each stays a plain single-table GX expectation. Every entity and article row of a night carries
one model_version: the one its stage pinned (batch.pin_model), so one night never mixes two models.
`check_version` writes the night's Data Docs
under the warehouse (`_reports/dt=D/`, local roots) and its verdict into the version folder
(`_check.json`), which `publish_day` requires.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from healthner.corpus.expectations import DATA_DOCS_RUN_PAGES, DATA_DOCS_SITE
from healthner.corpus.labels import ENTITY_TYPES
from healthner.errors import HealthnerError
from healthner.nightly.staging import CHECK_FILE, MANIFEST_FILE, part_fingerprints, read_json, version_of, write_json
from healthner.nightly.warehouse import REPORTS_DIR, SCHEMAS, PublishError, is_local, open_root

logger = logging.getLogger(__name__)
GX_RESULT_FORMAT = "SUMMARY"


@dataclass(frozen=True)
class CheckResult:
    dt: str
    success: bool
    failures: list[str] = field(default_factory=list)  # "frame: expectation(kwargs)" per failure
    rows: dict[str, int] = field(default_factory=dict)
    data_docs: str | None = None

    def __str__(self) -> str:
        head = f"warehouse check dt={self.dt}: {'passed' if self.success else 'FAILED'}"
        docs = [f"Data Docs: {self.data_docs}"] if self.data_docs else []
        return "\n".join([head, *self.failures, *docs])


class CheckFailed(HealthnerError):
    """The night broke an expectation; it was not published."""


def check_frames(tables: dict[str, pa.Table], lines_read: int) -> dict[str, pd.DataFrame]:
    """The frames the suite runs on, built from one night's three tables and its lines read."""
    entities = tables["entities"].to_pandas()
    articles = tables["articles"].to_pandas()
    rejects = tables["rejects"].to_pandas()
    lengths = articles[["article_id", "characters"]]
    spans = entities.merge(lengths, on="article_id", how="left")
    spans["span_chars"] = spans["end"] - spans["start"]
    spans["text_chars"] = spans["text"].str.len()
    counted = entities.groupby("article_id").size().rename("counted").reset_index()
    per_article = articles[["article_id", "n_entities", "model_version"]].merge(counted, on="article_id", how="left")
    per_article["counted"] = per_article["counted"].fillna(0).astype("int64")
    per_article["n_entities"] = per_article["n_entities"].astype("int64")
    totals = pd.DataFrame(
        {
            "entity_rows": [len(entities)],
            "n_entities_sum": [int(articles["n_entities"].sum())],
            "accounted": [len(articles) + len(rejects)],
            "lines_read": [lines_read],
        }
    )
    return {"entities": spans, "articles": per_article, "totals": totals}


def _one_model(model_version: str | None) -> list:
    """Rows of one model_version: the pinned one, or (no pin known) any single one."""
    import great_expectations as gx

    exp = gx.expectations
    if model_version is not None:
        return [exp.ExpectColumnValuesToBeInSet(column="model_version", value_set=[model_version])]
    return [exp.ExpectColumnUniqueValueCountToBeBetween(column="model_version", max_value=1)]


def _suites(model_version: str | None = None) -> dict[str, list]:
    import great_expectations as gx

    exp = gx.expectations
    return {
        "entities": [
            exp.ExpectColumnValuesToBeInSet(column="type", value_set=list(ENTITY_TYPES)),
            exp.ExpectColumnValuesToNotBeNull(column="characters"),  # every entity's article is in the night
            exp.ExpectColumnValuesToBeBetween(column="start", min_value=0),
            exp.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end", column_B="start"),
            exp.ExpectColumnPairValuesAToBeGreaterThanB(column_A="characters", column_B="end", or_equal=True),
            exp.ExpectColumnPairValuesToBeEqual(column_A="span_chars", column_B="text_chars"),
            exp.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0),
            *_one_model(model_version),
        ],
        "articles": [
            exp.ExpectColumnValuesToBeUnique(column="article_id"),
            exp.ExpectColumnPairValuesToBeEqual(column_A="n_entities", column_B="counted"),
            *_one_model(model_version),
        ],
        "totals": [
            exp.ExpectColumnPairValuesToBeEqual(column_A="entity_rows", column_B="n_entities_sum"),
            exp.ExpectColumnPairValuesToBeEqual(column_A="accounted", column_B="lines_read"),
        ],
    }


def _context(data_docs_dir: Path | None) -> Any:
    """An ephemeral GX context; with a folder, one Data Docs site written there."""
    import great_expectations as gx

    if data_docs_dir is None:
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), data_docs_sites={},
                                   analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
        return gx.get_context(project_config=config, mode="ephemeral")
    from healthner.corpus.expectations import _context as docs_context  # the validate step's site setup

    for stale in DATA_DOCS_RUN_PAGES:  # the in-memory stores only know this run: drop older pages
        shutil.rmtree(data_docs_dir / stale, ignore_errors=True)
    return docs_context(data_docs_dir)


def run_suite(dt: str, frames: dict[str, pd.DataFrame], data_docs_dir: Path | None = None,
              model_version: str | None = None) -> CheckResult:
    """Every expectation on its frame; with `data_docs_dir`, the results rendered as Data Docs there;
    `model_version`: the one every row must carry (None: any one, the same for all)."""
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = _context(data_docs_dir)
    source = context.data_sources.add_pandas(name="warehouse")
    failures = []
    for name, expectations in _suites(model_version).items():
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        suite = context.suites.add(gx.ExpectationSuite(name=f"warehouse_{name}", expectations=expectations))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DATA_DOCS_SITE])] if data_docs_dir else []
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"night_{name}", validation_definitions=[definition], actions=actions,
            result_format={"result_format": GX_RESULT_FORMAT}))
        run = checkpoint.run(batch_parameters={"dataframe": frames[name]})
        for result in run.run_results.values():
            for item in result.results:
                if not item.success:
                    config = item.expectation_config
                    failures.append(f"{name}: {config.type}({config.kwargs}) -> {item.result}")
    docs = str(data_docs_dir / "index.html") if data_docs_dir else None
    return CheckResult(dt, not failures, failures, data_docs=docs)


# --- a staged version -----------------------------------------------------------------------------


def read_version(fs: fsspec.AbstractFileSystem, version_dir: str) -> tuple[dict[str, pa.Table], dict]:
    """The staged tables and the stage manifest of a version folder; PublishError if incomplete."""
    manifest = read_json(fs, f"{version_dir}/{MANIFEST_FILE}")
    if manifest is None:
        raise PublishError(f"{version_dir}: no {MANIFEST_FILE}; the night was not fully staged")
    tables = {}
    for dataset, schema in SCHEMAS.items():
        parts = sorted(fs.glob(f"{version_dir}/{dataset}/*.parquet"))
        if not parts:
            raise PublishError(f"{version_dir}/{dataset}: no staged parts")
        read = []
        for part in parts:
            try:
                table = pq.read_table(part, filesystem=fs)
            except (OSError, pa.ArrowException) as exc:
                raise PublishError(f"{part}: unreadable staged part: {exc}") from exc
            if not table.schema.equals(schema):
                raise PublishError(f"{part}: schema {table.schema} differs from the {dataset} schema")
            read.append(table)
        tables[dataset] = pa.concat_tables(read)
    return tables, manifest


def reports_dir(warehouse: str, dt: str) -> Path | None:
    """Where the night's Data Docs go: `_reports/dt=D/` under a local warehouse (none on object stores)."""
    fs, root = open_root(warehouse)
    return Path(root) / REPORTS_DIR / f"dt={dt}" if is_local(fs) else None


def check_version(warehouse: str, version_dir: str) -> CheckResult:
    """Run the suite on a staged version, write its Data Docs and its verdict; CheckFailed (naming
    each failed expectation) when any fails. Re-running it rewrites the same verdict."""
    fs, _ = open_root(warehouse)
    dt, version = version_of(version_dir)
    tables, manifest = read_version(fs, version_dir)
    pinned = (manifest.get("model") or {}).get("model_version")
    result = run_suite(dt, check_frames(tables, int(manifest["lines_read"])), reports_dir(warehouse, dt), pinned)
    rows = {dataset: table.num_rows for dataset, table in tables.items()}
    result = CheckResult(dt, result.success, result.failures, rows, result.data_docs)
    verdict = {"version": version, "passed": result.success, "rows": rows, "failures": result.failures,
               "parts": part_fingerprints(fs, version_dir), "data_docs": result.data_docs}
    write_json(fs, f"{version_dir}/{CHECK_FILE}", verdict)
    logger.info("checked dt=%s version %s: %s %s", dt, version, "passed" if result.success else "FAILED", rows)
    if not result.success:
        raise CheckFailed(str(result))
    return result
