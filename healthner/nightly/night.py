"""The nightly DAG's task bodies, outside Airflow: plain values in and out (they travel as XComs).

Each is safe to retry at any point: `stage` writes a new version folder (an abandoned one is
collected by the next publish), `tag` rewrites its shard's parts, `check` rewrites its verdict and
Data Docs, and `publish` after its commit only reports what is published. Fault points
(faults.py) at the start and the end of each let the tests fail every task boundary once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

from healthner.config import NightlyParams, Params, TagParams, load_params
from healthner.errors import HealthnerError
from healthner.nightly.faults import fault_point
from healthner.nightly.staging import version_dir_of

logger = logging.getLogger(__name__)


class NoDay(HealthnerError):
    """The run has no day to tag: a manual run without a data interval and without a `dt` param."""


def night_params(params_file: str, root: str) -> Params:
    """The params file (relative: from `root`, the repo), its nightly paths anchored at `root`."""
    from healthner.nightly.batch import resolve_paths

    path = Path(params_file)
    return resolve_paths(load_params(path if path.is_absolute() else Path(root) / path), Path(root))


def night_day(requested: str | None, interval_start: datetime | None) -> str:
    """The day a run tags: the `dt` param when given (a manual run or a backfill of that day), else
    the day its data interval starts, i.e. the day that ended when the scheduled run started."""
    if requested:
        try:
            return date.fromisoformat(requested).isoformat()
        except ValueError:
            raise NoDay(f"dt={requested!r} is not a day (YYYY-MM-DD)") from None
    if interval_start is None:
        raise NoDay("this run has no data interval: trigger it with a logical date or with the param dt=YYYY-MM-DD")
    return interval_start.date().isoformat()


def tag_threads(tag: TagParams, nightly: NightlyParams, cores: int | None = None) -> int:
    """Torch threads per tag task: `tag.torch_threads` when set, else this machine's cores shared by
    the `nightly.tag_slots` tag tasks it may run at once (oversubscribed threads crawl)."""
    if tag.torch_threads:
        return tag.torch_threads
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // nightly.tag_slots)


def discover(params: Params, dt: str) -> list[str]:
    from healthner.nightly.batch import day_files

    fault_point("discover.start")
    files = day_files(params.nightly.inbox_dir, dt)
    fault_point("discover.done")
    return files


def stage(params: Params, dt: str, files: Sequence[str]) -> list[str]:
    from healthner.nightly.batch import stage_day

    fault_point("stage.start")
    shards = stage_day(params, dt, files)
    fault_point("stage.done")
    return shards


def tag(params: Params, shard: str) -> dict:
    from healthner.nightly.batch import tag_shard

    fault_point("tag.start")
    threads = tag_threads(params.tag, params.nightly)
    logger.info("tagging %s with %d torch threads", shard, threads)
    result = asdict(tag_shard(params.with_updates(tag={"torch_threads": threads}), shard))
    fault_point("tag.done")
    return result


def version_of_shards(shards: Sequence[dict]) -> str:
    """The one version folder a run's tagged shards belong to."""
    folders = {version_dir_of(shard["shard"]) for shard in shards}
    if len(folders) != 1:
        raise ValueError(f"shards of one run must share one version folder, got {sorted(folders)}")
    return folders.pop()


def check(params: Params, shards: Sequence[dict]) -> str:
    """The GX suite on the staged version (CheckFailed names each failed expectation); its folder."""
    from healthner.nightly.checks import check_version

    fault_point("check.start")
    folder = version_of_shards(shards)
    logger.info(check_version(params.nightly.warehouse_dir, folder))
    fault_point("check.done")
    return folder


def publish(params: Params, version_dir: str) -> dict:
    """Publish the checked version (publish.Superseded when a newer one is already published)."""
    from healthner.nightly.publish import publish_day

    fault_point("publish.start")
    published = asdict(publish_day(params.nightly, version_dir))
    fault_point("publish.done")
    return published
