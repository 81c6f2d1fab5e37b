"""The `unlabeled` stage's warehouse source: real nights staged and published into real Delta tables,
their articles' text read back from the inbox and put through the stage's cut, dedup and leak filter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.readers import Sentence, read_conll, write_sentences
from healthner.corpus.unlabeled import build_unlabeled
from healthner.errors import ConfigError
from healthner.nightly.batch import build_sample_inbox
from healthner.nightly.published_text import PublishedTextError, published_texts
from healthner.nightly.warehouse import read_night
from tests.nightly.nights import (
    ARTICLES,
    DAY,
    OTHER_DAY,
    REPO,
    night_params,
    publish_day_checked,
    stage_and_tag,
    write_inbox,
)


def _held_out(folder: Path, dev: list[str], test: list[str]) -> None:
    for split, texts in (("dev", dev), ("test", test)):
        sentences = [Sentence(f"{split}-{i}", f"{split}.txt", "WA", i, list(t), ["O"] * len(t)) for i, t in enumerate(texts)]
        write_sentences(sentences, folder / f"{split}.parquet")


def _stage_params(params: Params, tmp_path: Path, **warehouse) -> Params:
    """The night's params with the unlabeled stage reading only the warehouse, its outputs under tmp_path."""
    return params.with_updates(
        data={"unlabeled_files": []},
        prepare={"output_dir": str(tmp_path / "prepared")},
        unlabeled={"output": str(tmp_path / "unlabeled" / "sentences.parquet"), "report": str(tmp_path / "unlabeled.json"),
                   "warehouse": {"enabled": True, "warehouse_dir": params.nightly.warehouse_dir, **warehouse}},
    )


def _publish(params: Params, tmp_path: Path, dt: str, articles: list[dict]) -> str:
    write_inbox(tmp_path, dt, articles)
    return publish_day_checked(params, stage_and_tag(params, dt)).version


def _build(params: Params):
    return build_unlabeled(params, published_texts(params.unlabeled.warehouse))


@pytest.fixture
def two_days(tmp_path: Path) -> tuple[Params, dict[str, str]]:
    """The day before publishes a1 only; the day publishes a1 again with a2 and a3; dev holds a sentence of a1."""
    params = night_params(tmp_path)
    nights = {OTHER_DAY: _publish(params, tmp_path, OTHER_DAY, ARTICLES[:1]), DAY: _publish(params, tmp_path, DAY, ARTICLES)}
    _held_out(tmp_path / "prepared", dev=["吃了普拿疼！"], test=[])
    return params, nights


def test_published_days_are_read_back_and_their_sentences_counted_per_day(two_days, tmp_path: Path) -> None:
    params, nights = two_days
    stage = _stage_params(params, tmp_path)
    report = _build(stage)
    before, day = (f"warehouse/dt={dt}/{nights[dt]}" for dt in (OTHER_DAY, DAY))
    kept = pq.read_table(stage.unlabeled.output).to_pylist()
    assert [(row["text"], row["source"], row["record"]) for row in kept] == [
        ("頭痛三天。", before, 1), ("COVID-19 疫苗；", day, 2)]  # a1's sentences are the day before's; a2 is 2nd
    saved = json.loads(stage.unlabeled.report.read_text(encoding="utf-8"))["sources"]
    assert saved[before] == {"records": 1, "undecodable_bytes": 0, "sentences": 2, "kept": 1, "dropped": {"in_dev": 1}}
    assert saved[day] == {"records": 3, "undecodable_bytes": 0, "sentences": 5, "kept": 1,
                          "dropped": {"duplicate": 2, "too_short": 2}}  # ＡＢＣ, 血壓高
    for dt, source in ((OTHER_DAY, before), (DAY, day)):
        assert saved[source]["records"] == read_night(params.nightly.warehouse_dir, dt)["articles_rows"]
        assert saved[source]["sentences"] == saved[source]["kept"] + sum(saved[source]["dropped"].values())
    assert report.kept == len(kept) == 2


def test_the_range_picks_the_days_and_off_reads_nothing(two_days, tmp_path: Path) -> None:
    params, nights = two_days
    only_the_day = _build(_stage_params(params, tmp_path, start=DAY))
    assert list(only_the_day.sources) == [f"warehouse/dt={DAY}/{nights[DAY]}"]
    assert only_the_day.sources[f"warehouse/dt={DAY}/{nights[DAY]}"].dropped == {"in_dev": 1, "too_short": 2}
    only_the_day_before = _build(_stage_params(params, tmp_path, end=OTHER_DAY))
    assert list(only_the_day_before.sources) == [f"warehouse/dt={OTHER_DAY}/{nights[OTHER_DAY]}"]
    off = _stage_params(params, tmp_path, enabled=False)
    assert list(published_texts(off.unlabeled.warehouse)) == [] and _build(off).sources == {}


def test_the_sample_night_built_from_test_is_dropped_whole_by_the_leak_filter(tmp_path: Path) -> None:
    """`healthner sample-night`'s inbox (build_sample_inbox: articles of the test split), staged and
    published: read back from the warehouse, every one of its sentences is a test leak."""
    params = night_params(tmp_path, sample_articles=20)
    corpus = REPO / params.data.corpus_dir / "rocling2023_multiner_WA.txt"
    if not corpus.is_file():
        pytest.skip(f"real corpus not found at {corpus}")
    test = [s.text for s in read_conll(corpus, "WA").sentences[:300]]
    params = params.with_updates(prepare={"output_dir": str(tmp_path / "prepared")})
    _held_out(tmp_path / "prepared", dev=[], test=test)
    build_sample_inbox(params)
    publish_day_checked(params, stage_and_tag(params, params.nightly.sample_date))
    stage = _stage_params(params, tmp_path).with_updates(unlabeled={"min_chars": 1, "max_chars": 100_000})
    report = _build(stage)
    [night] = report.sources.values()
    assert night.records == 20 and night.sentences >= len(set(test)) > 0
    assert night.kept == 0 and set(night.dropped) <= {"in_test", "duplicate"}  # a repeat of a dropped test sentence
    _held_out(tmp_path / "prepared", dev=[], test=[])  # the same night, nothing held out: its sentences are kept
    control = _build(stage).sources[next(iter(report.sources))]
    assert control.sentences == night.sentences and control.kept == night.dropped["in_test"]


def test_a_missing_warehouse_is_one_line_naming_it(tmp_path: Path) -> None:
    params = _stage_params(night_params(tmp_path), tmp_path, warehouse_dir=str(tmp_path / "nowhere"))
    with pytest.raises(PublishedTextError, match=r"^unlabeled\.warehouse\.warehouse_dir .*nowhere: no such warehouse$"):
        _build(params)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishedTextError, match=r"empty: no day published yet$"):
        published_texts(params.unlabeled.warehouse.model_copy(update={"warehouse_dir": str(tmp_path / "empty")}))


def test_a_range_without_a_published_day_names_the_range_and_what_is_published(two_days, tmp_path: Path) -> None:
    params, _ = two_days
    with pytest.raises(PublishedTextError) as caught:
        _build(_stage_params(params, tmp_path, start="2020-01-01", end="2020-01-31"))
    assert str(caught.value) == (f"unlabeled.warehouse: no day published from 2020-01-01 through 2020-01-31 in "
                                 f"{params.nightly.warehouse_dir} (published: {OTHER_DAY} to {DAY})")


def test_start_after_end_or_a_bad_day_in_params_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for bad, message in (({"start": "2026-11-24", "end": "2026-11-23"}, "start (2026-11-24) is after end (2026-11-23)"),
                         ({"start": "2026-02-30"}, "day is out of range")):
        raw["unlabeled"]["warehouse"] = {"enabled": True, **bad}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"params\.yaml: unlabeled\.warehouse: Value error, " + re.escape(message)):
            load_params(tmp_path / "params.yaml")


def test_an_inbox_file_gone_after_publishing_is_named(two_days, tmp_path: Path) -> None:
    params, _ = two_days
    gone = tmp_path / "inbox" / f"dt={DAY}" / "articles-000.jsonl"
    gone.unlink()
    with pytest.raises(PublishedTextError, match=rf"^{gone}: inbox file of the published day {DAY} not found"):
        _build(_stage_params(params, tmp_path))


def test_an_article_changed_in_the_inbox_after_publishing_is_named(two_days, tmp_path: Path) -> None:
    params, _ = two_days
    write_inbox(tmp_path, DAY, [{**ARTICLES[0], "text": "改過了"}, *ARTICLES[1:]])
    changed = rf"dt={DAY}: 1 published article\(s\), first 'a1', no longer in the inbox files"
    with pytest.raises(PublishedTextError, match=changed):
        _build(_stage_params(params, tmp_path))


def test_the_cli_stage_reads_the_warehouse_and_a_missing_one_is_one_error_line(two_days, tmp_path: Path) -> None:
    params, _ = two_days
    stage = _stage_params(params, tmp_path)
    params_file = tmp_path / "stage.yaml"
    for warehouse_dir, code in ((params.nightly.warehouse_dir, 0), (str(tmp_path / "nowhere"), 1)):
        dumped = stage.model_dump(mode="json", by_alias=True)
        dumped["unlabeled"]["warehouse"]["warehouse_dir"] = warehouse_dir
        params_file.write_text(yaml.safe_dump(dumped, allow_unicode=True), encoding="utf-8")
        result = CliRunner().invoke(app, ["unlabeled", "--params", str(params_file)])
        assert result.exit_code == code, result.output
    missing = f"error: unlabeled.warehouse.warehouse_dir {tmp_path / 'nowhere'}: no such warehouse"
    assert result.stderr.splitlines() == [missing]
    assert json.loads(stage.unlabeled.report.read_text(encoding="utf-8"))["kept"] == 2
