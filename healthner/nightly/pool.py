"""One Tagger per process, each on its share of the CPU cores, behind the Tagger interface.

On a small CPU one tagging process with every core's thread leaves cores idle: the members'
recurrent layers step through a window one character at a time, on matrices too small to split
well across threads. Processes of one thread each keep every core busy (make bench measures both).
Texts are cut into contiguous groups of about equal characters, one per process; each process tags
its group as a Tagger would, and the entities come back in text order, the same as one Tagger's.
Pool processes never outlive the process that started them (die_with_parent).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Self

from healthner.nightly.tagger import Entity, Tagger
from healthner.sections.tagging import TagParams, usable_cores

_WORKER: dict[str, Tagger] = {}  # the tagger a pool process loaded (one per process)
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal this process gets when its parent dies
PARENT_POLL_S = 1.0  # how often the fallback watchdog checks that the parent is still there


def tagging_processes(params: TagParams, device: str, chars: int | None = None) -> int:
    """How many processes tag: tag.workers, or for auto one per `threads` cores on the CPU (threads:
    tag.torch_threads, else 1); a GPU, or fewer than tag.pool_min_chars characters, gets one."""
    if device.startswith("cuda") or (chars is not None and chars < params.pool_min_chars):
        return 1
    if params.workers != "auto":
        return params.workers
    return max(1, usable_cores() // (params.torch_threads or 1))


def worker_params(params: TagParams, processes: int) -> TagParams:
    """One of `processes` tagging processes' settings: its share of the cores as threads (TagParams.threads_for)."""
    return params.model_copy(update={"torch_threads": params.threads_for(processes), "workers": 1})


def balanced_groups(texts: Sequence[str], groups: int) -> list[range]:
    """Contiguous ranges of text indices, at most `groups`, each with about an equal share of the characters."""
    total = sum(len(t) for t in texts)
    bounds, seen, start = [], 0, 0
    for index, text in enumerate(texts):
        seen += len(text)
        if seen * groups >= total * (len(bounds) + 1) and len(bounds) < groups - 1:
            bounds.append(range(start, index + 1))
            start = index + 1
    bounds.append(range(start, len(texts)))
    return [group for group in bounds if len(group)]


def die_with_parent(parent: int) -> None:
    """End this pool process when `parent` (the process that started the pool) dies, even by SIGKILL,
    which runs no clean-up in the parent: orphans would each keep a loaded model (about a GB) forever.

    Two mechanisms, because neither covers every case alone:
    - Linux's prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills this process the moment its parent
      dies, with no polling. Linux only; a process sets it for itself (a fork clears it), so the pool
      initializer sets it; it follows the parent *thread* that spawned the process, which is the one
      that calls TaggerPool (ProcessPoolExecutor starts spawned processes from submit).
    - a daemon thread that polls os.getppid() every PARENT_POLL_S and exits the process once it is
      reparented: portable, but only as fast as its poll, and it needs the interpreter to get the GIL.
    The parent may already be gone before prctl took effect: the getppid check covers that window."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _load_worker(model_dir: str, params: TagParams, device: str, parent: int) -> None:
    die_with_parent(parent)
    _WORKER["tagger"] = Tagger.load(model_dir, params, device)


def _tag_in_worker(texts: list[str]) -> list[list[Entity]]:
    return _WORKER["tagger"].tag(texts)


def _version_in_worker() -> str:
    return _WORKER["tagger"].model_version


class TaggerPool:
    """`processes` Tagger processes (spawned: safe with torch's and ONNX Runtime's threads), loaded once."""

    def __init__(self, model_dir: Path | str, params: TagParams, device: str, processes: int) -> None:
        self.params, self.processes = worker_params(params, processes), processes
        self._executor = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"), initializer=_load_worker,
            initargs=(str(model_dir), self.params, device, os.getpid()))
        # one call per process: with spawn, the executor starts a process only for a call no idle one can take,
        # so this starts (and loads) them all now, together, not one per later tag(); a load error surfaces here
        started = [self._executor.submit(_version_in_worker) for _ in range(processes)]
        self.model_version = next(iter({call.result() for call in started}))

    def tag(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Entities of each text, in text order, with offsets into that text (as Tagger.tag)."""
        groups = balanced_groups(texts, self.processes)
        found: list[list[Entity]] = []
        for entities in self._executor.map(_tag_in_worker, [[texts[i] for i in group] for group in groups]):
            found.extend(entities)
        return found

    def close(self) -> None:
        self._executor.shutdown(cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_tagging(model_dir: Path | str, params: TagParams, chars: int | None = None) -> Tagger | TaggerPool:
    """What tags `chars` characters (None: unknown, many) with `model_dir`: one Tagger in this process,
    or a TaggerPool when tagging_processes says more than one."""
    from healthner.model.devices import tag_device

    device = tag_device(params)
    processes = tagging_processes(params, device, chars)
    if processes == 1:
        return Tagger.load(model_dir, worker_params(params, 1), device)
    return TaggerPool(model_dir, params, device, processes)


@contextlib.contextmanager
def closing_pool(tagging: Tagger | TaggerPool, own: bool = False) -> Iterator[Tagger | TaggerPool]:
    """`tagging` for a with block; if `own`, a pool's processes are stopped at its end."""
    try:
        yield tagging
    finally:
        if own and isinstance(tagging, TaggerPool):
            tagging.close()
