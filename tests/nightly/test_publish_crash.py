"""A publish interrupted at every step, between its table commits included, by an exception and by a
kill (a separate process that dies with os._exit), then retried; readers in another process poll
the day throughout through deltalake and DuckDB, and never see a missing or a mixed day."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from healthner.nightly.checks import check_version
from healthner.nightly.faults import FAULTS_ENV, KILLED_EXIT_CODE, InjectedFault, arm
from healthner.nightly.publish import publish_day
from healthner.nightly.query import connect
from healthner.nightly.staging import new_version
from healthner.nightly.warehouse import DATASETS, NIGHTS, load_table, read_day, read_night
from tests.nightly.nights import ARTICLES, DAY, REPO, night_params, stage_and_tag, write_inbox

STEPS = ("publish.verified", "publish.committed_entities", "publish.committed_articles", "publish.committed_rejects",
         "publish.recorded")
CLEAN_REPUBLISHES = 20  # plain switches between the interrupted ones, for the readers to race
READER_WARMUP_S = 3.0
PUBLISH_IN_A_PROCESS = """
import json, sys
from healthner.sections.tagging import NightlyParams
from healthner.nightly.publish import publish_day
publish_day(NightlyParams(**json.loads(sys.argv[1])), sys.argv[2])
"""


def child_env(faults: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, FAULTS_ENV: str(faults)}


@pytest.fixture
def nights(tmp_path: Path):
    """Three checked nights of the day, each with its own row counts, to be republished in turn."""
    params = night_params(tmp_path)
    templates = []
    for count, extra in ((3, ["not json"]), (2, []), (1, ["x", "y"])):
        write_inbox(tmp_path, DAY, ARTICLES[:count], extra=extra)
        folder = Path(stage_and_tag(params, DAY))
        check_version(params.nightly.warehouse_dir, str(folder))
        templates.append(folder.rename(tmp_path / f"night-{count}"))  # out of the warehouse's sight
    return params, templates


def clone(template: Path, warehouse: str) -> str:
    """The same checked night under a new version name (a later stage of identical inbox files)."""
    target = Path(warehouse) / "_staging" / f"dt={DAY}" / new_version()
    shutil.copytree(template, target)
    return str(target)


def expected(template: Path) -> list[int]:
    verdict = json.loads((template / "_check.json").read_text())
    return [verdict["rows"][name] for name in DATASETS]


def test_interrupted_publishes_complete_on_retry_and_readers_never_see_a_broken_day(nights, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    params, templates = nights
    warehouse, faults = params.nightly.warehouse_dir, tmp_path / "faults"
    monkeypatch.setenv(FAULTS_ENV, str(faults))
    publish_day(params.nightly, clone(templates[0], warehouse))
    stop, observed = tmp_path / "stop", tmp_path / "observed.jsonl"
    reader = subprocess.Popen([sys.executable, str(REPO / "tests/nightly/poll_reader.py"), warehouse, DAY, str(stop),
                               str(observed)], env=child_env(faults))
    try:
        time.sleep(READER_WARMUP_S)
        switches = 0
        for round_, (step, how) in enumerate((s, h) for s in STEPS for h in ("raise", "kill")):
            template = templates[round_ % len(templates)]
            version = clone(template, warehouse)
            arm(faults, step, how)
            if how == "kill":
                done = subprocess.run([sys.executable, "-c", PUBLISH_IN_A_PROCESS, params.nightly.model_dump_json(),
                                       version], check=False, env=child_env(faults), capture_output=True, text=True)
                assert done.returncode == KILLED_EXIT_CODE, done.stderr[-2000:]
            else:
                with pytest.raises(InjectedFault):
                    publish_day(params.nightly, version)
            published = publish_day(params.nightly, version)  # the retry completes it
            assert published.version == Path(version).name == read_night(warehouse, DAY)["night"], step
            day = read_day(warehouse, DAY)
            assert [day.tables[name].num_rows for name in DATASETS] == expected(template), step
            for other in range(CLEAN_REPUBLISHES // len(STEPS) // 2):
                publish_day(params.nightly, clone(templates[(round_ + other + 1) % len(templates)], warehouse))
                switches += 1
            switches += 1
    finally:
        stop.touch()
        reader.wait(60)
    assert not list(faults.iterdir())  # every armed fault fired
    assert not (Path(warehouse) / "_staging" / f"dt={DAY}").exists()  # every try published and cleaned up
    records = [c for c in load_table(warehouse, NIGHTS).history() if c.get("operation") == "WRITE"]
    nights = [c["healthner.night"] for c in records]
    assert len(nights) == len(set(nights)) == switches + 1  # each night recorded once, retries included
    records = [json.loads(line) for line in observed.read_text().splitlines()]
    good = {tuple(expected(t)) for t in templates}
    report_reads(records, switches, good)
    for via in ("pyarrow", "duckdb"):
        reads = [r for r in records if r["via"] == via]
        assert len(reads) > switches, f"{via}: too few reads to have raced the switches"
        broken = [r for r in reads if "error" in r or tuple(r["rows"] or ()) not in good]
        assert not broken, f"{via} saw a missing or mixed day: {broken[:5]}"
        assert len({tuple(r["rows"]) for r in reads}) == len(good)  # it saw every night come and go


def report_reads(records: list[dict], switches: int, good: set[tuple]) -> None:
    """What each reader saw, printed for the record (pytest -s)."""
    def outcome(record: dict) -> str:
        return "error" if "error" in record else "ok" if tuple(record["rows"]) in good else "mixed"

    summary = Counter((r["via"], outcome(r)) for r in records)
    errors = Counter(r["error"].split(":")[0] for r in records if "error" in r)
    print(f"\n{switches} switches; reads {dict(summary)}; errors {dict(errors)}")


@pytest.mark.parametrize("step", ["publish.committed_entities", "publish.committed_articles"])
def test_a_publish_killed_between_its_table_commits_shows_no_mixed_night(nights, tmp_path: Path, step: str) -> None:
    """Killed with the new night in some tables only: readers still get the previous night whole
    (the tables themselves already hold the new rows); the retry records the new night once."""
    params, templates = nights
    warehouse, faults = params.nightly.warehouse_dir, tmp_path / "faults"
    publish_day(params.nightly, clone(templates[0], warehouse))
    version = clone(templates[2], warehouse)
    arm(faults, step, "kill")
    done = subprocess.run([sys.executable, "-c", PUBLISH_IN_A_PROCESS, params.nightly.model_dump_json(), version],
                          check=False, env=child_env(faults), capture_output=True, text=True)
    assert done.returncode == KILLED_EXIT_CODE, done.stderr[-2000:]
    new_night = Path(version).name
    assert set(load_table(warehouse, "entities").to_pyarrow_table().column("night").to_pylist()) == {new_night}
    day = read_day(warehouse, DAY)
    assert [day.tables[name].num_rows for name in DATASETS] == expected(templates[0])  # the previous night, whole
    counts = connect(warehouse).sql("SELECT (SELECT count(*) FROM entities), (SELECT count(*) FROM articles), "
                                    "(SELECT count(*) FROM rejects)").fetchall()[0]
    assert list(counts) == expected(templates[0])
    assert publish_day(params.nightly, version).version == new_night  # the retry
    day = read_day(warehouse, DAY)
    assert [day.tables[name].num_rows for name in DATASETS] == expected(templates[2]) and day.version == new_night
    recorded = [c["healthner.night"] for c in load_table(warehouse, NIGHTS).history() if c.get("operation") == "WRITE"]
    assert len(recorded) == 2 and recorded[0] == new_night  # newest first: the first night, then this one, once
