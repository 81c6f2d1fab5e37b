#!/usr/bin/env bash
# `make e2e`: the nightly DAG on the compose file's topology (CeleryExecutor, Redis, Postgres,
# api-server, scheduler, dag-processor, triggerer, two Celery workers), natively on this machine,
# with faults. Installs postgresql and redis-server from Debian's packages when missing, then runs
# scripts/e2e.py (what it does and asserts: its docstring). Leaves no process running.
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
command -v chattr >/dev/null || { echo "chattr (e2fsprogs) is needed for the publish fault" >&2; exit 1; }

start=$(date +%s)
set +e
PYTHONPATH="$PWD" "$PY" scripts/e2e.py
code=$?
set -e
echo "make e2e: $(( $(date +%s) - start ))s in all, exit $code"
exit $code
