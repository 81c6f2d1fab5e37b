#!/usr/bin/env bash
# `make e2e`: the nightly DAG on the compose file's topology (CeleryExecutor, Redis, Postgres,
# api-server, scheduler, dag-processor, triggerer, two Celery workers), natively on this machine,
# with faults. Installs postgresql and redis-server from Debian's packages when missing, then runs
# `python -m scripts.e2e` (what it does and asserts: scripts/e2e/__init__.py's docstring). Leaves no process running.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"

have_postgres() { command -v pg_ctl >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; }
if ! have_postgres || ! command -v redis-server >/dev/null; then
  echo "== installing postgresql and redis-server (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql redis-server >/dev/null
fi
# Debian's packages start their own servers on the default ports; e2e uses its own, on free ports.

start=$(date +%s)
# scripts.e2e stops what it started when it ends or gets SIGTERM/SIGINT; pass those on to it
PYTHONPATH="$PWD" "$PY" -m scripts.e2e &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
code=0
wait "$pid" || code=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || code=$?; done  # a signal interrupted wait: let it clean up
echo "make e2e: $(( $(date +%s) - start ))s in all, exit $code"
exit $code
