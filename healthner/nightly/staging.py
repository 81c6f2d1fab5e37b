"""The staging area: where a night is staged, tagged and checked before it is published.

    _staging/dt=D/<night>/rejects/, entities/, articles/   Parquet parts of the night's tables
    _staging/dt=D/<night>/_shards/                         tagging inputs (article text)
    _staging/dt=D/<night>/_manifest.json, _check.json      the stage's facts, the check's verdict

A night's version sorts by the time it was staged, so of two nights of one day the later-staged one
is the greater. Publishing removes the day's folders up to the published night; any folder left
longer than `nightly.keep_unpublished_s` (a failed night, with its article text) goes too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from datetime import UTC, date, datetime

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from healthner.io import json_text
from healthner.nightly.warehouse import DATASETS, SCHEMAS, PublishError, is_local
from healthner.sections.tagging import NightlyParams

logger = logging.getLogger(__name__)
STAGING_DIR = "_staging"
MANIFEST_FILE = "_manifest.json"  # written by stage into its staging folder
CHECK_FILE = "_check.json"  # the check's verdict on a staging folder
SHARDS_DIR = "_shards"  # tagging inputs (article text) inside a staging folder; never published
STAMP_FORMAT = "%Y%m%dT%H%M%S"  # the leading stamp of a night's version


def staging_dir(root: str, dt: str) -> str:
    return f"{root}/{STAGING_DIR}/dt={dt}"


def new_version() -> str:
    """A night's version: sorts by the time it was staged (UTC), unique across workers."""
    now = time.time_ns()
    stamp = time.strftime(STAMP_FORMAT, time.gmtime(now // 1_000_000_000))
    return f"{stamp}.{now % 1_000_000_000:09d}Z-{uuid.uuid4().hex[:8]}"


def version_of(version_dir: str) -> tuple[str, str]:
    """(dt, version) of a staging folder `.../_staging/dt=D/<version>`; dt must be a day."""
    parent, version = version_dir.rstrip("/").rsplit("/", 1)
    dt = parent.rsplit("/dt=", 1)[-1]
    try:
        date.fromisoformat(dt)
    except ValueError:
        raise PublishError(f"{version_dir} is not a staging folder .../dt=YYYY-MM-DD/<version>") from None
    return dt, version


def version_dir_of(shard_path: str) -> str:
    """The staging folder a shard file belongs to."""
    return shard_path.rsplit(f"/{SHARDS_DIR}/", 1)[0]


def write_part(fs: fsspec.AbstractFileSystem, path: str, table: pa.Table) -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    pq.write_table(table, path, filesystem=fs)


def write_json(fs: fsspec.AbstractFileSystem, path: str, value: dict) -> None:
    """Write a small JSON file whole: a temporary file renamed over it (local), one PUT (object stores)."""
    data = json_text(value, indent=1, sort_keys=True, final_newline=False).encode("utf-8")
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}"
    with open(temporary, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> dict | None:
    """A staging JSON file (None if absent); a damaged one is a PublishError naming it."""
    try:
        with fs.open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PublishError(f"{path}: not a JSON file ({exc}); stage the night again") from exc


def part_fingerprints(fs: fsspec.AbstractFileSystem, version_dir: str) -> dict[str, dict[str, int]]:
    """Each table's part files (name -> bytes): what a check verdict was given, so a changed part voids it."""
    return {
        dataset: {
            path.rsplit("/", 1)[-1]: int(fs.size(path)) for path in sorted(fs.glob(f"{version_dir}/{dataset}/*.parquet"))
        }
        for dataset in DATASETS
    }


def staged_tables(fs: fsspec.AbstractFileSystem, version_dir: str) -> tuple[dict, dict[str, pa.Table]]:
    """The stage manifest and the staged tables; PublishError unless fully staged and checked on
    exactly the parts that are there now."""
    manifest = read_json(fs, f"{version_dir}/{MANIFEST_FILE}")
    if manifest is None:
        raise PublishError(f"{version_dir}: no {MANIFEST_FILE}; the night was not fully staged")
    verdict = read_json(fs, f"{version_dir}/{CHECK_FILE}")
    if verdict is None or not verdict.get("passed"):
        raise PublishError(f"{version_dir}: not checked, or its check failed; run the check first")
    if verdict["parts"] != part_fingerprints(fs, version_dir):
        raise PublishError(f"{version_dir}: parts changed after the check; check it again")
    if any(not verdict["parts"][name] for name in DATASETS):
        raise PublishError(f"{version_dir}: a table has no parts")
    tables = {name: pa.concat_tables([pq.read_table(f"{version_dir}/{name}/{part}", filesystem=fs)
                                      for part in sorted(verdict["parts"][name])]).cast(SCHEMAS[name])
              for name in DATASETS}
    return manifest, tables


def staged_age_s(night: str, now: float) -> float:
    """Seconds since a night was staged, from its version name (warehouse.new_version)."""
    try:
        staged = datetime.strptime(night[: len("YYYYmmddTHHMMSS")], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return now - staged.timestamp()


def clean_staging(fs: fsspec.AbstractFileSystem, root: str, dt: str, night: str, nightly: NightlyParams) -> None:
    """Remove the day's staging folders up to the published night (it and older tries: their rows
    are in the tables now) and any staging folder older than `keep_unpublished_s` (article text).
    Two publishes of a day may clean at once: what the other one removed first is already gone."""
    now = time.time()
    for folder in fs.glob(f"{root}/{STAGING_DIR}/dt=*/*"):
        day, name = version_of(folder)
        if (day == dt and name <= night) or staged_age_s(name, now) > nightly.keep_unpublished_s:
            logger.info("removing staging folder dt=%s %s", day, name)
            with contextlib.suppress(FileNotFoundError):
                fs.rm(folder, recursive=True)
    for folder in fs.glob(f"{root}/{STAGING_DIR}/dt=*"):
        with contextlib.suppress(FileNotFoundError, OSError):  # not empty again, or removed by the other
            if not fs.ls(folder, detail=False):
                fs.rmdir(folder)
