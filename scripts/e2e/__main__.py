"""The flow of `python -m scripts.e2e` (what it runs and asserts: the package's docstring): the stack
started, the steps of E2E_ONLY (default all) run in order, a summary, every process stopped."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from scripts.e2e.scenarios import E2E
from scripts.e2e.settings import ARTICLES, BIN, MARKER, SHARDS, T0, Ports, log, native_env
from scripts.e2e.supervisor import Stack


def run(e2e: E2E) -> int:
    s = e2e.stack
    for folder in ("logs",):
        (e2e.root / folder).mkdir()
    s.start_postgres()
    s.start("redis", ["redis-server", "--port", str(s.ports.redis), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", str(e2e.root)])
    s.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s.ports.moto)])
    e2e.source = e2e.model_source()
    (e2e.root / "airflow").mkdir()
    (e2e.opt / "data").mkdir(parents=True)
    (e2e.opt / "models").symlink_to(e2e.source / "models")
    e2e.write_params(e2e.source)
    e2e.ids = e2e.write_inbox()
    e2e.start_airflow(e2e.source)
    steps = {"clean": e2e.clean_night, "sigkill": e2e.sigkill, "retrigger": e2e.retrigger,
             "postgres": e2e.postgres_restart, "publish": e2e.publish_halfway, "s3": e2e.s3,
             "backfill": e2e.backfill, "pool": e2e.no_pool}
    only = [x for x in os.environ.get("E2E_ONLY", "").split(",") if x] or list(steps)
    for name, fn in steps.items():
        if name in only:
            log(f"== {name}")
            e2e.step(name, fn)
    print("\n== e2e summary", flush=True)
    for name, ok, detail in e2e.results:
        print(f"{'PASSED' if ok else 'FAILED'}  {name}: {detail}")
    for workers, seconds in e2e.timings.items():
        print(f"night ({ARTICLES} articles, {SHARDS} shards) with {workers}: {seconds:.0f}s")
    return 0 if e2e.results and all(ok for _, ok, _ in e2e.results) else 1


def main() -> int:
    root = Path(os.environ.get("E2E_ROOT") or tempfile.mkdtemp(prefix="healthner-e2e-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    ports = Ports.pick()
    stack = Stack(root, ports, native_env(root, ports))
    os.environ[MARKER] = str(root)  # so that children of `subprocess.run` are swept as well
    os.environ.update({k: v for k, v in stack.env.items() if k.startswith(("AWS_", "FSSPEC_"))})

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(f"work folder {root}; ports {ports}")
    code = 1
    try:
        code = run(E2E(stack))
    finally:
        stack.cleanup()
        print(f"e2e wall time {time.monotonic() - T0:.0f}s; exit {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
