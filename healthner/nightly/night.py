"""The nightly DAG's task bodies, outside Airflow: plain values in and out (they travel as XComs).

Each is safe to retry at any point: `stage` writes a new version folder (an abandoned one is
collected by the next publish), `tag` rewrites its shard's parts, `check` rewrites its verdict and
Data Docs, and `publish` after its commit only reports what is published. Fault points
(faults.py) at the start and the end of each let the tests fail every task boundary once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

from healthner.config import Params, load_params
from healthner.errors import HealthnerError
from healthner.nightly.faults import fault_point
from healthner.nightly.staging import version_dir_of
from healthner.sections.tagging import NightlyParams, TagParams

logger = logging.getLogger(__name__)


class NoDay(HealthnerError):
    """The run has no day to tag: a manual run without a data interval and without a `dt` param."""


class NotSetUp(HealthnerError):
    """The deployment lacks what every night needs (the params file, the model, the inbox folder):
    no retry can fix it, so the run fails at its first task with this one line."""


def night_params(params_file: str, root: str) -> Params:
    """The params file (relative: from `root`, the folder above the DAG folder), its relative nightly
    paths anchored at `root` too."""
    from healthner.nightly.batch import resolve_paths

    path = Path(params_file)
    resolved = path if path.is_absolute() else Path(root) / path
    if not resolved.is_file():
        taken = "" if path.is_absolute() else f" (a relative path is taken from {root}, the folder above the DAG folder)"
        raise NotSetUp(f"HEALTHNER_PARAMS={params_file}: {resolved} not found{taken}")
    return resolve_paths(load_params(resolved), Path(root))


def require_inputs(params: Params) -> None:
    """The model the night tags with and the inbox folder exist (a missing day inside the inbox is
    no error: that day had no articles)."""
    import fsspec

    from healthner.ensemble.shipped import MANIFEST_FILE as MODEL_MANIFEST

    nightly = params.nightly
    model = nightly.tagging_model()
    if not (model / MODEL_MANIFEST).is_file():
        raise NotSetUp(f"no model to tag with: neither nightly.model_dir {nightly.model_dir} nor nightly.fallback_model_dir "
                       f"{nightly.fallback_model_dir} holds {MODEL_MANIFEST} (make release, or mount the model there)")
    fs, inbox = fsspec.core.url_to_fs(nightly.inbox_dir)
    if not fs.isdir(inbox):
        raise NotSetUp(f"nightly.inbox_dir {nightly.inbox_dir}: no such folder")


def asset_extra(published: dict) -> dict:
    """What the warehouse's asset events carry for a downstream DAG: the day, the published version,
    the rows of each table and the model that tagged them (the night record's one model_version,
    which publish checks). The one function that knows the fields of publish's result."""
    return {"dt": published["dt"], "version": published["version"], "rows": dict(published["rows"]),
            "model_version": published["model_version"]}


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
    """Torch threads per tag task: this machine's cores shared by the `nightly.tag_slots` tag tasks it
    may run at once (TagParams.threads_for)."""
    return tag.threads_for(nightly.tag_slots, cores)


def discover(params: Params, dt: str) -> list[str]:
    from healthner.nightly.batch import day_files

    fault_point("discover.start")
    files = day_files(params.nightly.inbox_dir, dt)
    fault_point("discover.done")
    return files


def stage(params: Params, dt: str, files: Sequence[str]) -> list[str]:
    from healthner.nightly.day import stage_day

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
