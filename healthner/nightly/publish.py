"""Publishing a checked night: one atomic pointer write, under the day's lock, fenced by version.

    lock _locks/dt=D.lock -> the pointer already names this version?  finish the tail, report it
                          -> a newer version is published?            Superseded, nothing changes
                          -> verify the version (manifest, passed check of these very parts)
                          -> write _published/dt=D.json  (the commit: readers switch here, all tables)
                          -> tail: current link, the version's shards removed, old versions collected

Every step before the commit leaves the published day as it was; every step after it is redone by
a retry, so a publish interrupted anywhere (an exception, a kill) is completed by running it again.
Replaced versions stay `keep_replaced_s` for readers that read the old pointer just before the
switch; unpublished versions (failed or abandoned tries, with article text in `_shards/`) are
removed by the day's next publish, and any left after `keep_unpublished_s` by any publish.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import fsspec

from healthner.config import NightlyParams
from healthner.errors import HealthnerError
from healthner.nightly.faults import fault_point
from healthner.nightly.warehouse import (
    CHECK_FILE,
    CURRENT_LINK,
    DATASETS,
    LOCKS_DIR,
    MANIFEST_FILE,
    POINTERS_DIR,
    SHARDS_DIR,
    VERSIONS_DIR,
    PublishError,
    day_versions_dir,
    is_local,
    open_root,
    part_fingerprints,
    partition_path,
    pointer_path,
    read_json,
    sync_folder,
    version_of,
    write_json,
)

logger = logging.getLogger(__name__)
LOCK_POLL_S = 0.05
STAMP_FORMAT = "%Y%m%dT%H%M%S"  # the leading stamp of a version name (warehouse.new_version)


class Superseded(HealthnerError):
    """A newer version of the day is already published; this older one is not published over it."""


class DayLocked(HealthnerError):
    """Another publish of the same day held the lock longer than `publish_lock_timeout_s`."""


@dataclass(frozen=True)
class Published:
    dt: str
    version: str
    rows: dict[str, int]
    lines_read: int
    already: bool = False  # the pointer already named this version: a retry after the commit


# --- the lock -------------------------------------------------------------------------------------


@contextmanager
def day_lock(fs: fsspec.AbstractFileSystem, root: str, dt: str, timeout_s: float) -> Iterator[None]:
    """An exclusive lock on publishing one day (local roots; the kernel drops it if the holder dies).
    Object stores have no lock: there the version fence alone keeps an older night from winning."""
    if not is_local(fs):
        yield
        return
    os.makedirs(f"{root}/{LOCKS_DIR}", exist_ok=True)
    fd = os.open(f"{root}/{LOCKS_DIR}/dt={dt}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise DayLocked(f"dt={dt}: another publish holds {root}/{LOCKS_DIR}/dt={dt}.lock") from exc
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- verifying and committing ---------------------------------------------------------------------


def verified_rows(fs: fsspec.AbstractFileSystem, version_dir: str) -> tuple[dict, dict[str, int]]:
    """The stage manifest and the checked row counts; PublishError unless the version was fully
    staged and its check passed on exactly the parts that are there now."""
    manifest = read_json(fs, f"{version_dir}/{MANIFEST_FILE}")
    if manifest is None:
        raise PublishError(f"{version_dir}: no {MANIFEST_FILE}; the night was not fully staged")
    verdict = read_json(fs, f"{version_dir}/{CHECK_FILE}")
    if verdict is None or not verdict.get("passed"):
        raise PublishError(f"{version_dir}: not checked, or its check failed; run the check first")
    if verdict["parts"] != part_fingerprints(fs, version_dir):
        raise PublishError(f"{version_dir}: parts changed after the check; check it again")
    if any(not verdict["parts"][dataset] for dataset in DATASETS):
        raise PublishError(f"{version_dir}: a table has no parts")
    return manifest, verdict["rows"]


def pointer_for(fs: fsspec.AbstractFileSystem, root: str, version_dir: str, manifest: dict, rows: dict[str, int],
                previous: dict | None, keep_replaced_s: float) -> dict:
    """The day's next pointer: the version, its files (relative to the root), counts, and the
    versions it replaced recently (kept for readers until `keep_replaced_s` has passed)."""
    dt, version = version_of(version_dir)
    now = time.time()
    replaced = [r for r in (previous or {}).get("replaced", []) if now - r["at"] < keep_replaced_s]
    if previous is not None:
        replaced.append({"version": previous["version"], "at": now})
    relative = version_dir.removeprefix(f"{root}/")
    files = {dataset: [f"{relative}/{dataset}/{name}" for name in sorted(parts)]
             for dataset, parts in part_fingerprints(fs, version_dir).items()}
    return {"dt": dt, "version": version, "published_at": now, "lines_read": int(manifest["lines_read"]),
            "rows": rows, "inbox_files": manifest.get("files", []), "replaced": replaced, "files": files}


def sync_parts(root: str, pointer: dict) -> None:
    """Local roots: the version's parts on disk before the pointer names them (a crash after the
    commit must not leave the pointer naming files the disk never got)."""
    for names in pointer["files"].values():
        for name in names:
            fd = os.open(f"{root}/{name}", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if names:
            sync_folder(f"{root}/{names[0].rsplit('/', 1)[0]}")


# --- after the commit: links and collection (each step idempotent) ----------------------------------


def replace_link(path: str, target: str) -> None:
    """Point the symlink `path` at `target` in one rename (readers see the old or the new target)."""
    folder, name = path.rsplit("/", 1)
    temporary = f"{folder}/.{name}-{uuid.uuid4().hex[:8]}"
    os.symlink(target, temporary)
    os.replace(temporary, path)
    sync_folder(folder)


def link_day(root: str, dt: str, version: str) -> None:
    """Local roots: `_versions/dt=D/current` -> the version, and each table's `dt=D` -> `current/<table>`,
    so plain hive paths (pandas, Spark, a DuckDB glob) switch to the new version in one rename."""
    replace_link(f"{day_versions_dir(root, dt)}/{CURRENT_LINK}", version)
    for dataset in DATASETS:
        path = partition_path(root, dataset, dt)
        target = f"../{VERSIONS_DIR}/dt={dt}/{CURRENT_LINK}/{dataset}"
        if os.path.islink(path) and os.readlink(path) == target:
            continue
        if os.path.lexists(path) and not os.path.islink(path):
            raise PublishError(f"{path} is a folder of an older warehouse layout; move it away and publish again")
        os.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        replace_link(path, target)


def version_age_s(version: str, now: float) -> float | None:
    """Seconds since a version was staged, from its name; None for a name that is not a version."""
    try:
        staged = datetime.strptime(version[: len("YYYYmmddTHHMMSS")], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return now - staged.timestamp()


def removable(version: str, pointer: dict | None, nightly: NightlyParams, now: float) -> bool:
    """Whether a version folder of a day may go: an older unpublished try, a replaced version past
    `keep_replaced_s`, or anything unpublished past `keep_unpublished_s`; never the current one."""
    age = version_age_s(version, now)
    if age is None or (pointer is not None and version == pointer["version"]):
        return False
    if pointer is not None and version < pointer["version"]:
        held = [r for r in pointer.get("replaced", []) if r["version"] == version]
        return not held or now - held[0]["at"] >= nightly.keep_replaced_s
    return age > nightly.keep_unpublished_s


def collect_day(fs: fsspec.AbstractFileSystem, root: str, dt: str, nightly: NightlyParams, locked: bool) -> None:
    """Remove a day's removable versions, the published version's shards (article text), and, when
    this process holds the day's lock, temporary names left by a killed publish."""
    folder = day_versions_dir(root, dt)
    pointer = read_json(fs, pointer_path(root, dt))
    now = time.time()
    names = [path.rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False)] if fs.exists(folder) else []
    for name in names:
        path = f"{folder}/{name}"
        if name.startswith(".") and locked:
            fs.rm(path)
        elif name != CURRENT_LINK and removable(name, pointer, nightly, now):
            logger.info("removing version dt=%s %s", dt, name)
            fs.rm(path, recursive=True)
    if pointer is not None and fs.exists(f"{folder}/{pointer['version']}/{SHARDS_DIR}"):
        fs.rm(f"{folder}/{pointer['version']}/{SHARDS_DIR}", recursive=True)
    if locked:
        for leftover in fs.glob(f"{root}/{POINTERS_DIR}/.dt={dt}.json.*"):
            fs.rm(leftover)
    if fs.exists(folder) and not fs.ls(folder, detail=False):
        fs.rmdir(folder)


def collect(fs: fsspec.AbstractFileSystem, root: str, dt: str, nightly: NightlyParams) -> None:
    """The published day under its lock, then every other day's leftovers (no lock needed: only
    versions that no pointer names and no reader may still hold are removed)."""
    collect_day(fs, root, dt, nightly, locked=True)
    fault_point("publish.collected_day")
    for folder in fs.glob(f"{root}/{VERSIONS_DIR}/dt=*"):
        other = folder.rsplit("/dt=", 1)[-1]
        if other != dt:
            collect_day(fs, root, other, nightly, locked=False)


def finish(fs: fsspec.AbstractFileSystem, root: str, pointer: dict, nightly: NightlyParams) -> None:
    """Everything after the commit; a retry redoes whatever a kill left undone."""
    if is_local(fs):
        link_day(root, pointer["dt"], pointer["version"])
    fault_point("publish.linked")
    collect(fs, root, pointer["dt"], nightly)


# --- publishing -----------------------------------------------------------------------------------


def published_of(pointer: dict, already: bool) -> Published:
    return Published(pointer["dt"], pointer["version"], dict(pointer["rows"]), int(pointer["lines_read"]), already)


def publish_day(nightly: NightlyParams, version_dir: str) -> Published:
    """Publish one checked version of a day (see the module docstring). Idempotent: run again after
    the commit it only finishes the tail and reports the published counts (`already`)."""
    fs, root = open_root(nightly.warehouse_dir)
    _, version_dir = open_root(version_dir)
    dt, version = version_of(version_dir)
    if version_dir != f"{day_versions_dir(root, dt)}/{version}":
        raise PublishError(f"{version_dir} is not a version folder of the warehouse {root}")
    with day_lock(fs, root, dt, nightly.publish_lock_timeout_s):
        fault_point("publish.locked")
        previous = read_json(fs, pointer_path(root, dt))
        if previous is not None and previous["version"] == version:
            finish(fs, root, previous, nightly)
            logger.info("dt=%s version %s was already published: %s", dt, version, previous["rows"])
            return published_of(previous, already=True)
        if previous is not None and previous["version"] > version:
            raise Superseded(f"dt={dt}: version {previous['version']} is published, newer than {version}")
        manifest, rows = verified_rows(fs, version_dir)
        fault_point("publish.verified")
        pointer = pointer_for(fs, root, version_dir, manifest, rows, previous, nightly.keep_replaced_s)
        if is_local(fs):
            sync_parts(root, pointer)
        write_json(fs, pointer_path(root, dt), pointer, fault="publish.pointer_staged")
        fault_point("publish.committed")
        logger.info("published dt=%s version %s: %s", dt, version, rows)
        finish(fs, root, pointer, nightly)
    return published_of(pointer, already=False)
