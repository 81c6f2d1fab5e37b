"""The processes of the e2e run: each started in its own session with its log, restarted as compose's
`restart: always` would, stopped by its PID; Postgres through pg_ctl; a final sweep by an environment
marker that only this run's processes carry."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.e2e.settings import MARKER, Ports, log


@dataclass
class Stack:
    root: Path
    ports: Ports
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    specs: dict[str, tuple[list[str], dict]] = field(default_factory=dict)
    worker_env: dict[str, dict] = field(default_factory=dict)
    pg_bin: Path | None = None

    def start(self, name: str, args: list[str], extra: dict | None = None) -> subprocess.Popen:
        path = self.root / "logs" / f"{name}.log"
        self.worker_env[name] = {"offset": path.stat().st_size if path.exists() else 0}  # where this start's log begins
        with open(path, "ab") as logfile:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(args, env={**os.environ, **self.env, **(extra or {})}, stdout=logfile,
                                    stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        self.procs[name] = proc
        self.specs[name] = (args, extra or {})
        log(f"started {name} (pid {proc.pid})")
        return proc

    def restart_exited(self) -> list[str]:
        """What compose's `restart: always` does: start again every component that exited."""
        exited = [(name, p.returncode) for name, p in self.procs.items() if p.poll() is not None]
        for name, code in exited:
            print(f"!!!!! {name} (pid {self.procs[name].pid}) exited with status {code}; restarting it, as "
                  f"compose's restart: always would", flush=True)
            self.procs.pop(name)
            self.start(name, *self.specs[name])
        return [name for name, _ in exited]

    def stop(self, name: str, sig: int = signal.SIGTERM, wait_s: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        for s in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, s)  # the process and the children it forked (same session)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()

    # postgres: initdb refuses root, so it runs as the `postgres` user when we are root
    def pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Output to pg/tools.log, never to a pipe: a postmaster started by pg_ctl inherits it."""
        cmd = [str(self.pg_bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        with open(self.root / "logs" / "pg-tools.log", "ab") as out:
            result = subprocess.run(cmd, check=False, env={**os.environ, MARKER: str(self.root)}, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd="/", timeout=120)
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): see {self.root}/logs/pg-tools.log")
        return result

    def pg_data(self) -> Path:
        return self.root / "pg" / "data"

    def start_postgres(self) -> None:
        self.pg_bin = find_pg_bin()
        (self.root / "pg").mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root / "pg", "postgres")
        self.pg("initdb", "-D", str(self.pg_data()), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.pg_ctl_start()
        self.pg("createdb", "-h", "127.0.0.1", "-p", str(self.ports.postgres), "-U", "airflow", "airflow")
        log(f"postgres on 127.0.0.1:{self.ports.postgres} (pid {self.pg_pid()})")

    def pg_ctl_start(self) -> None:
        opts = f"-p {self.ports.postgres} -c listen_addresses=127.0.0.1 -k {self.root / 'pg'} -c fsync=off"
        self.pg("pg_ctl", "-D", str(self.pg_data()), "-l", str(self.root / "pg" / "postgres.log"), "-o", opts,
                "-w", "start")

    def pg_pid(self) -> int | None:
        pidfile = self.pg_data() / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    def restart_postgres(self) -> None:
        self.pg("pg_ctl", "-D", str(self.pg_data()), "-l", str(self.root / "pg" / "postgres.log"), "-m", "fast",
                "-w", "restart", "-o",
                f"-p {self.ports.postgres} -c listen_addresses=127.0.0.1 -k {self.root / 'pg'} -c fsync=off")

    def stop_postgres(self) -> None:
        if self.pg_bin and self.pg_pid():
            pid = self.pg_pid()
            self.pg("pg_ctl", "-D", str(self.pg_data()), "-m", "fast", "-w", "stop", check=False)
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)

    def cleanup(self) -> None:
        procs = list(self.procs.values())
        self.procs.clear()
        for proc in procs:  # SIGTERM to every process group at once, then SIGKILL what is left after 20 s
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.stop_postgres()
        left = marked_processes(self.root)
        for pid in left:
            log(f"sweep: killing leftover pid {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1)
        still = marked_processes(self.root)
        log(f"processes of this run still running: {len(still)} {still or ''}")
        if not os.environ.get("E2E_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)



def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the task runner sets its own process group, so killpg misses it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def marked_processes(root: Path) -> list[int]:
    """PIDs whose environment carries this run's marker (children of any process we started)."""
    needle = f"{MARKER}={root}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def find_pg_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        sys.exit("postgresql is not installed (scripts/e2e.sh installs it)")
    return versions[-1].parent

