"""A night without a model, for the warehouse tests: real inbox files staged, parts written with
hand-placed entities by the writer the tagging task uses, then the real check and publish."""

from __future__ import annotations

import json
from pathlib import Path

from healthner.config import Params, load_params
from healthner.nightly.batch import write_tagged
from healthner.nightly.checks import CheckResult, check_frames, check_version, run_suite
from healthner.nightly.day import read_shard, stage_day
from healthner.nightly.inbox import day_files
from healthner.nightly.publish import Published, publish_day
from healthner.nightly.staging import version_dir_of
from healthner.nightly.tagger import Entity
from healthner.nightly.warehouse import read_day

REPO = Path(__file__).resolve().parents[2]
DAY, OTHER_DAY = "2026-11-24", "2026-11-23"
ARTICLES = [
    {"article_id": "a1", "text": "頭痛三天。\n吃了普拿疼！", "title": "頭痛", "source": "forum"},
    {"article_id": "a2", "text": "  COVID-19 疫苗；ＡＢＣ  ", "url": "https://example.org/a2"},
    {"article_id": "a3", "text": "血壓高"},
]


def write_inbox(root: Path, dt: str, articles: list[dict], extra: list[str] = ()) -> None:
    day = root / "inbox" / f"dt={dt}"
    day.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(a, ensure_ascii=False) for a in articles] + list(extra)
    (day / "articles-000.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def first_char_entity(text: str) -> list[Entity]:
    """One entity on the first non-space character: offsets the tagger would produce."""
    start = len(text) - len(text.lstrip())
    return [Entity("SYMP", text[start], start, start + 1, 0.5)]


def stage_and_tag(params, dt: str, version: str = "v1") -> str:
    """The DAG's stage + tag steps with entities placed by hand; returns the version folder."""
    shards = stage_day(params, dt, day_files(params.nightly.inbox_dir, dt))
    for shard in shards:
        articles = read_shard(shard)
        write_tagged(shard, [(articles, [first_char_entity(a.text) for a in articles])], version)
    return version_dir_of(shards[0])


def publish_day_checked(params, folder: str) -> Published:
    """The DAG's check + publish steps."""
    check_version(params.nightly.warehouse_dir, folder)
    return publish_day(params.nightly, folder)




def night_params(root: Path, **nightly) -> Params:
    """The repo's params with the inbox and the warehouse under `root`, and no model (none is pinned)."""
    no_model = str(root / "no-model")
    return load_params(REPO / "params.yaml").with_updates(
        nightly={"inbox_dir": str(root / "inbox"), "warehouse_dir": str(root / "warehouse"), "shards": 2,
                 "model_dir": no_model, "fallback_model_dir": no_model, **nightly}
    )


def check_published(warehouse: str, dt: str) -> CheckResult:
    """The night's suite (the frames and expectations check_version runs on a staged night) on the
    published day, as the warehouse reads it back."""
    day = read_day(warehouse, dt)
    assert day is not None, f"{warehouse}: dt={dt} was never published"
    return run_suite(dt, check_frames(day.tables, day.lines_read))
