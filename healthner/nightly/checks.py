"""The Great Expectations suite over one published day of the warehouse.

Expectations that relate tables (an entity's offsets against its article's length, entity rows
against articles.n_entities, rows against lines read) run on small frames joined beforehand,
so each stays a plain single-table GX expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from healthner.corpus.labels import ENTITY_TYPES
from healthner.nightly.warehouse import read_manifest, read_partition


@dataclass(frozen=True)
class CheckResult:
    dt: str
    success: bool
    failures: list[str] = field(default_factory=list)  # "frame: expectation(kwargs)" per failure

    def __str__(self) -> str:
        head = f"warehouse check dt={self.dt}: {'passed' if self.success else 'FAILED'}"
        return "\n".join([head, *self.failures])


class CheckFailed(RuntimeError):
    pass


def check_frames(warehouse: str, dt: str) -> dict[str, pd.DataFrame]:
    """The frames the suite runs on, built from the published partitions and the day's manifest."""
    entities = read_partition(warehouse, "entities", dt).to_pandas()
    articles = read_partition(warehouse, "articles", dt).to_pandas()
    rejects = read_partition(warehouse, "rejects", dt).to_pandas()
    lines_read = int(read_manifest(warehouse, dt)["lines_read"])
    lengths = articles[["article_id", "characters"]]
    spans = entities.merge(lengths, on="article_id", how="left")
    spans["span_chars"] = spans["end"] - spans["start"]
    spans["text_chars"] = spans["text"].str.len()
    counted = entities.groupby("article_id").size().rename("counted").reset_index()
    per_article = articles[["article_id", "n_entities"]].merge(counted, on="article_id", how="left")
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


def _suites() -> dict[str, list]:
    import great_expectations as gx

    exp = gx.expectations
    return {
        "entities": [
            exp.ExpectColumnValuesToBeInSet(column="type", value_set=list(ENTITY_TYPES)),
            exp.ExpectColumnValuesToNotBeNull(column="characters"),  # every entity's article was published
            exp.ExpectColumnValuesToBeBetween(column="start", min_value=0),
            exp.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end", column_B="start"),
            exp.ExpectColumnPairValuesAToBeGreaterThanB(column_A="characters", column_B="end", or_equal=True),
            exp.ExpectColumnPairValuesToBeEqual(column_A="span_chars", column_B="text_chars"),
            exp.ExpectColumnValuesToBeBetween(column="score", min_value=0.0, max_value=1.0),
        ],
        "articles": [
            exp.ExpectColumnValuesToBeUnique(column="article_id"),
            exp.ExpectColumnPairValuesToBeEqual(column_A="n_entities", column_B="counted"),
        ],
        "totals": [
            exp.ExpectColumnPairValuesToBeEqual(column_A="entity_rows", column_B="n_entities_sum"),
            exp.ExpectColumnPairValuesToBeEqual(column_A="accounted", column_B="lines_read"),
        ],
    }


def check_published(warehouse: str, dt: str) -> CheckResult:
    """Run the suite on one published day; the result lists each failed expectation."""
    import great_expectations as gx

    frames = check_frames(warehouse, dt)
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas(name="warehouse")
    failures = []
    for name, expectations in _suites().items():
        batch_definition = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(name)
        suite = context.suites.add(gx.ExpectationSuite(name=f"warehouse_{name}", expectations=expectations))
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frames[name]})
        result = batch.validate(suite)
        for item in result.results:
            if not item.success:
                config = item.expectation_config
                failures.append(f"{name}: {config.type}({config.kwargs}) -> {item.result}")
    return CheckResult(dt, not failures, failures)


def assert_published(warehouse: str, dt: str) -> CheckResult:
    """check_published, raising CheckFailed (the Airflow task fails) when any expectation fails."""
    result = check_published(warehouse, dt)
    if not result.success:
        raise CheckFailed(str(result))
    return result
