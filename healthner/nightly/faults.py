"""Fault points for the crash tests: a named step fails once, by an exception or by a kill.

`HEALTHNER_FAULTS` names a folder; a file `<point>` in it arms that point. When the step reaches
the point, the file is removed first (so the retry passes) and then the step raises `InjectedFault`
(file content `raise`) or the process dies at once without cleanup (`kill`: `os._exit`). Unset in
production: `fault_point` is then one environment lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

FAULTS_ENV = "HEALTHNER_FAULTS"
KILL = "kill"
KILLED_EXIT_CODE = 137  # what a SIGKILL'd process reports to its parent shell


class InjectedFault(RuntimeError):
    """A failure a test asked for at a fault point."""


def arm(folder: Path, point: str, how: str = "raise") -> None:
    """Make `point` fail once, by `raise` or `kill`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / point).write_text(how, encoding="utf-8")


def fault_point(point: str) -> None:
    """Fail here once if a test armed this point; otherwise do nothing."""
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return
    armed = Path(folder) / point
    try:
        how = armed.read_text(encoding="utf-8").strip()
        armed.unlink()
    except FileNotFoundError:
        return
    if how == KILL:
        os._exit(KILLED_EXIT_CODE)
    raise InjectedFault(f"injected fault at {point}")
