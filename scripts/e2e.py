"""`make e2e`: the nightly DAG on the compose file's topology, natively on this machine, with faults.

Postgres (metadata DB + Celery result backend) and Redis (Celery broker) on 127.0.0.1 with
throwaway data folders; Airflow's api-server, scheduler, dag-processor, triggerer and two Celery
workers, each its own process; a moto S3 server on 127.0.0.1. The Airflow settings come from
docker/airflow.env (the compose file's env_file) plus `native_env()` below (addresses, folders).
Nights of `healthner_nightly`, triggered through the REST API, in this order:

  1. a clean night on two workers: published counts reconcile with the inbox, GX check task, DuckDB
  2. worker SIGKILL: a worker killed while it tags a shard; the task is retried on the other worker
  3. re-trigger (one worker): the same day replaced exactly, same rows, no duplicates
  4. Postgres restarted during the run: recovers, or fails loudly and a re-trigger succeeds
  5. publish failing halfway (its task process killed after the entities table's commit, before
     the other tables and the night record, on every try, after a changed inbox): the
     previously published day must still be there, row for row; a re-trigger then publishes
  6. inbox and warehouse on s3:// (moto server): Delta tables committed by conditional put
  7. backfill: three days by docs/airflow.md's `airflow backfill create`, at most two runs at once;
     each day published, its asset events carrying its dt, version, rows and model_version
  8. without the healthner_tag pool a run fails at its first task, naming the pool

Every process started is stopped by its PID (and a final sweep by an environment marker that only
this run's processes carry); nothing is left running. Exit status 0 only if every check PASSED.
Env: E2E_ROOT (work folder, default a new /tmp/healthner-e2e-*), E2E_KEEP=1 (keep it),
E2E_ONLY (comma list of steps: clean,sigkill,retrigger,postgres,publish,s3,backfill,pool).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
ENV_FILE = REPO / "docker" / "airflow.env"
DAG_ID = "healthner_nightly"
DT = "2026-11-24"
SHARDS = 4
ARTICLES = 32
BAD_LINES = ['{"article_id": "broken-1", "text": "寫到一', '{"article_id": "empty-1", "text": ""}']
MARKER = "HEALTHNER_E2E_ROOT"
NIGHT_TIMEOUT_S = 420
TAG_POOL = "healthner_tag"  # the DAG's pool for tag tasks
TAG_POOL_SLOTS = 2  # two workers, each of concurrency 1 (docker/airflow.env)
RETRIES = 2  # per task ($HEALTHNER_RETRIES), 5 s apart
S3_BUCKET = "healthner-e2e"
# the compose layout: the DAG's relative paths are taken from /opt/airflow, where ../models and
# ../data are mounted; the native run mirrors it under <root>/opt-airflow
LAYOUT = {"inbox_dir": "data/inbox", "warehouse_dir": "data/warehouse", "model_dir": "models/release",
          "fallback_model_dir": "models/ensemble"}
T0 = time.monotonic()
DOCS_PAGE = REPO / "docs" / "airflow.md"  # its `airflow ...` commands are run here, verbatim
PAGE_COMMANDS = ("airflow pools set", "airflow backfill create")


def mod(name: str):
    """A module of the package's nightly side (imported once the venv is known)."""
    return importlib.import_module(f"healthner.nightly.{name}")


def code_hash() -> str:
    """A digest of what a tiny model depends on (package, params, DVC stages, the tests' tiny profile):
    the cached tiny model is retrained when any of it changes."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted([*(REPO / "healthner").rglob("*.py"), REPO / "params.yaml", REPO / "dvc.yaml",
                    REPO / "tests" / "conftest.py", REPO / "scripts" / "e2e_model.py"])
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def read_sentences(path: Path) -> list:
    try:
        from healthner.corpus.readers import read_sentences as read
    except ModuleNotFoundError:
        from healthner.corpus import read_sentences as read
    return read(path)


def wh_files(warehouse: str, table: str) -> list[str]:
    """The data files of the published day in one Delta table (its current version), as URIs."""
    current = mod("warehouse").load_table(warehouse, table)
    return current.file_uris(partition_filters=[("dt", "=", DT)])


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.0f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@dataclass
class Ports:
    postgres: int
    redis: int
    api: int
    moto: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


def native_env(root: Path, ports: Ports) -> dict[str, str]:
    """Every Airflow setting of the native run: docker/airflow.env plus what differs on one host."""
    pg = f"airflow:airflow@127.0.0.1:{ports.postgres}/airflow"
    return {
        **read_env_file(),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:@127.0.0.1:{ports.redis}/0",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports.api}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports.api}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "healthner-e2e-only",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "airflow" / "passwords.json"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_hostname.hostname",
        "AIRFLOW__CORE__FERNET_KEY": "",
        # a dead worker's task is failed and retried after 30 s without heartbeat (compose: 60)
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "HEALTHNER_PARAMS": str(root / "opt-airflow" / "params.yaml"),
        "HEALTHNER_RETRIES": str(RETRIES),  # read when the DAG file is parsed
        "HEALTHNER_RETRY_DELAY_S": "5",
        "HEALTHNER_FAULTS": str(root / "faults"),  # fault points armed by the publish fault
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "scripts" / "e2e_hooks")]),
        "PYTHONHASHSEED": "0",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.moto}",
        "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.moto}",
        MARKER: str(root),
    }


# --- processes ------------------------------------------------------------------------------------


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
        logfile = open(path, "ab")
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
            result = subprocess.run(cmd, env={**os.environ, MARKER: str(self.root)}, stdout=out,
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


def page_command(prefix: str) -> list[str]:
    """The one command of docs/airflow.md's shell blocks that starts with `prefix`, as argv."""
    import re
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", DOCS_PAGE.read_text(encoding="utf-8"), re.DOTALL)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    (found,) = [line for line in lines if line.startswith(prefix)]
    return [AIRFLOW, *shlex.split(found)[1:]]


def wait_for(what: str, predicate, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- REST API and metadata DB ---------------------------------------------------------------------


class Api:
    def __init__(self, port: int, password: str):
        self.base = f"http://127.0.0.1:{port}"
        self.password = password
        self.token: str | None = None

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token or self.login()}"
        req = urllib.request.Request(self.base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {"error": exc.read().decode(errors="replace")[:500]}
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            return 0, {"error": str(exc)}

    def login(self) -> str:
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": self.password}, auth=False)
        if status not in (200, 201):
            raise RuntimeError(f"login as admin failed: {status} {body}")
        self.token = body["access_token"]
        return self.token

    def up(self) -> bool:
        return self.call("GET", "/api/v2/version", auth=False)[0] == 200


def db_rows(env: dict, sql: str, args: tuple = ()) -> list[tuple]:
    import psycopg2

    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    try:
        with psycopg2.connect(url, connect_timeout=5) as con, con.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    except psycopg2.OperationalError:
        return []  # Postgres restarting: the caller polls again


def run_state(env: dict, run_id: str) -> tuple | None:
    rows = db_rows(env, "SELECT state, start_date, end_date FROM dag_run WHERE dag_id=%s AND run_id=%s",
                   (DAG_ID, run_id))
    return rows[0] if rows else None


def task_rows(env: dict, run_id: str) -> list[tuple]:
    return db_rows(env, "SELECT task_id, map_index, state, hostname, try_number FROM task_instance "
                        "WHERE dag_id=%s AND run_id=%s ORDER BY task_id, map_index", (DAG_ID, run_id))


def history_rows(env: dict, run_id: str) -> list[tuple]:
    return db_rows(env, "SELECT task_id, map_index, try_number, state, hostname FROM task_instance_history "
                        "WHERE dag_id=%s AND run_id=%s ORDER BY task_id, map_index, try_number", (DAG_ID, run_id))


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Night:
    run_id: str
    state: str
    seconds: float
    tasks: list[tuple]


class E2E:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.env = stack.env
        self.root = stack.root
        self.opt = stack.root / "opt-airflow"  # mirrors /opt/airflow of the compose file
        self.password = secrets.token_urlsafe(12)
        self.api = Api(stack.ports.api, self.password)
        self.results: list[tuple[str, bool, str]] = []
        self.counter = 0
        self.timings: dict[str, float] = {}

    # setup
    def model_source(self) -> Path:
        """<folder holding models/ensemble and data/prepared>: the repo's trained model, or a tiny one."""
        trained = any((REPO / "models" / kind / "ensemble.json").is_file() for kind in ("release", "ensemble"))
        if trained and (REPO / "data/prepared/test.parquet").is_file():
            log("model: the trained models/release, else models/ensemble")
            return REPO
        cache = Path(os.environ.get("E2E_MODEL_CACHE", REPO / ".cache" / "e2e-model")) / code_hash()
        if not (cache / "models" / "ensemble" / "ensemble.json").is_file():
            log(f"model: none trained; training the tests' tiny profile into {cache} (once)")
            subprocess.run([sys.executable, str(REPO / "scripts" / "e2e_model.py"), str(cache)], check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        log(f"model: tiny ensemble from {cache}")
        return cache

    def write_params(self, source: Path, storage: str = "local") -> None:
        load_params = importlib.import_module("healthner.config").load_params
        paths = {key: str(self.opt / rel) for key, rel in LAYOUT.items()}
        if storage == "s3":
            paths.update(inbox_dir=f"s3://{S3_BUCKET}/inbox", warehouse_dir=f"s3://{S3_BUCKET}/warehouse")
        params = load_params(REPO / "params.yaml").with_updates(
            prepare={"output_dir": str(source / "data" / "prepared")},
            tag={"torch_threads": 1},
            nightly={**paths, "shards": SHARDS, "sample_articles": ARTICLES,
                     "sample_date": DT, "chunk_articles": 8},
        )
        import yaml

        Path(self.env["HEALTHNER_PARAMS"]).write_text(
            yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True), encoding="utf-8")
        self.params = params

    def write_inbox(self, extra: int = 0) -> set[str]:
        """The sample day (test-split articles) plus two bad lines; `extra` more articles in a 2nd file."""
        batch = mod("batch")
        records = batch.sample_articles(
            read_sentences(self.params.prepare.output_dir / "test.parquet"),
            ARTICLES, DT)
        fs, root = mod("warehouse").open_root(self.params.nightly.inbox_dir)
        day = f"{root}/dt={DT}"
        if fs.exists(day):
            fs.rm(day, recursive=True)
        batch.write_inbox_day(self.params.nightly.inbox_dir, DT, records)
        with fs.open(f"{day}/articles-000.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in BAD_LINES)
        ids = {r["article_id"] for r in records}
        if extra:
            more = [{**r, "article_id": f"extra-{i:03d}"} for i, r in enumerate(records[:extra])]
            with fs.open(f"{day}/articles-001.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in more)
            ids |= {r["article_id"] for r in more}
        return ids

    def start_airflow(self, source: Path) -> None:
        # the login: user admin (AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS) with the password in this file
        Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(json.dumps({"admin": self.password}))
        # the REST API the DAG's first task asks whether its pool exists (tasks may not read the metadata DB)
        self.env["AIRFLOW_CONN_HEALTHNER_API"] = json.dumps({"conn_type": "http", "host": "127.0.0.1", "schema": "http",
                                                             "port": self.stack.ports.api, "login": "admin",
                                                             "password": self.password})
        log("airflow db migrate (Postgres)")
        with open(self.root / "logs" / "db-migrate.log", "wb") as out:
            subprocess.run([AIRFLOW, "db", "migrate"], env={**os.environ, **self.env}, check=True, stdout=out,
                           stderr=subprocess.STDOUT)
            # the tag tasks' pool, by docs/airflow.md's command: one slot per worker here
            pool = page_command("airflow pools set")
            assert pool[3:5] == [TAG_POOL, str(TAG_POOL_SLOTS)], pool
            subprocess.run(pool, env={**os.environ, **self.env}, check=True, stdout=out, stderr=subprocess.STDOUT)
        s = self.stack
        s.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(s.ports.api), "--workers", "1"])
        s.start("scheduler", [AIRFLOW, "scheduler"])
        s.start("dag-processor", [AIRFLOW, "dag-processor"])
        s.start("triggerer", [AIRFLOW, "triggerer"])
        for n in (1, 2):
            self.start_worker(n)
        wait_for("the api-server", self.api.up, 180, 2)
        self.api.login()
        log("api-server up; logged in as admin through /auth/token")
        wait_for(f"{DAG_ID} to be parsed", lambda: self.api.call("GET", f"/api/v2/dags/{DAG_ID}")[0] == 200, 180, 2)
        status, body = self.api.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        assert status == 200 and body.get("is_paused") is False, (status, body)
        for n in (1, 2):
            self.wait_worker(n)
        log("DAG unpaused; two Celery workers ready")

    def start_worker(self, n: int) -> None:
        s = self.stack
        extra = {"E2E_HOSTNAME": f"worker-{n}", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        s.start(f"worker-{n}", [AIRFLOW, "celery", "worker", "--celery-hostname", f"worker-{n}@%h",
                                "--concurrency", "1", "--without-mingle", "--without-gossip"], extra)

    def wait_worker(self, n: int) -> None:
        logfile = self.root / "logs" / f"worker-{n}.log"
        offset = self.stack.worker_env.get(f"worker-{n}", {}).get("offset", 0)

        def ready() -> bool:
            if self.stack.procs[f"worker-{n}"].poll() is not None:
                raise RuntimeError(f"worker-{n} exited; see {logfile}")
            with open(logfile, "rb") as fh:
                fh.seek(offset)
                return b" ready." in fh.read()

        wait_for(f"worker-{n}", ready, 180, 1)

    # nights
    def trigger(self, label: str) -> str:
        self.counter += 1
        run_id = f"e2e-{self.counter:02d}-{label}"
        # Airflow keeps one run per (DAG, logical date): each night gets its own logical date, and the
        # DAG param dt names the day it tags (as an operator re-runs a day)
        status, body = self.api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                     {"dag_run_id": run_id, "logical_date": f"{DT}T00:00:{self.counter:02d}Z",
                                      "conf": {"dt": DT}})
        if status not in (200, 201):
            raise RuntimeError(f"trigger {run_id}: {status} {body}")
        log(f"triggered {run_id} through POST /api/v2/dags/{DAG_ID}/dagRuns")
        return run_id

    def wait_night(self, run_id: str, timeout: float = NIGHT_TIMEOUT_S, on_poll=None) -> Night:
        def done():
            if on_poll:
                on_poll()
            row = run_state(self.env, run_id)
            return row if row and row[0] in ("success", "failed") else None

        try:
            state, start, end = wait_for(f"run {run_id}", done, timeout, 1)
        except TimeoutError:
            tasks = task_rows(self.env, run_id)
            log(f"run {run_id} did not finish in {timeout}s; tasks: {tasks}")
            return Night(run_id, "timeout", timeout, tasks)
        seconds = (end - start).total_seconds() if start and end else float("nan")
        tasks = task_rows(self.env, run_id)
        log(f"run {run_id}: {state} in {seconds:.0f}s")
        return Night(run_id, state, seconds, tasks)

    def running_tag(self, run_id: str):
        rows = [r for r in task_rows(self.env, run_id) if r[0] == "tag" and r[2] == "running" and r[3]]
        return rows[0] if rows else None

    def published(self) -> dict:
        """The published day: sorted rows of each dataset and the manifest."""
        wh = mod("warehouse")
        warehouse = self.params.nightly.warehouse_dir
        tables = {d: wh.read_partition(warehouse, d, DT) for d in wh.DATASETS}
        rows = {d: sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist()) for d, t in tables.items()}
        return {"rows": rows, "manifest": wh.read_night(warehouse, DT), "articles": tables["articles"]}

    def verify(self, night: Night, ids: set[str], label: str) -> dict:
        """Published day reconciles with the inbox: every article once, rejects, entities, GX task, DuckDB."""
        assert night.state == "success", f"{label}: run {night.run_id} is {night.state}: {night.tasks}"
        states = {(t[0], t[1]): t[2] for t in night.tasks}
        assert states[("check", -1)] == "success", f"{label}: the GX check task is {states[('check', -1)]}"
        assert sum(1 for k in states if k[0] == "tag") == SHARDS, f"{label}: {SHARDS} tag tasks expected: {states}"
        day = self.published()
        article_ids = day["articles"].column("article_id").to_pylist()
        assert len(article_ids) == len(set(article_ids)), f"{label}: duplicated articles"
        assert set(article_ids) == ids, f"{label}: lost {sorted(ids - set(article_ids))[:5]}, extra {sorted(set(article_ids) - ids)[:5]}"
        n_entities = sum(day["articles"].column("n_entities").to_pylist())
        assert len(day["rows"]["entities"]) == n_entities, f"{label}: entity rows != sum(n_entities)"
        assert len(day["rows"]["rejects"]) == len(BAD_LINES), f"{label}: rejects {day['rows']['rejects']}"
        assert day["manifest"]["lines_read"] == len(ids) + len(BAD_LINES), f"{label}: lines_read {day['manifest']}"
        summary = (f"{len(article_ids)} articles (= inbox), {n_entities} entities, {len(BAD_LINES)} rejects, "
                   f"lines_read {day['manifest']['lines_read']}; GX check task success")
        if "://" not in self.params.nightly.warehouse_dir:
            query = mod("query").run_query(
                self.params.nightly.warehouse_dir,
                f"SELECT count(DISTINCT article_id) AS articles, count(*) AS entities FROM entities WHERE dt = '{DT}'")
            print(query, flush=True)
        log(f"{label}: {summary}")
        return day

    def record(self, name: str, ok: bool, detail: str) -> None:
        self.results.append((name, ok, detail))
        print(f"{'PASSED' if ok else 'FAILED'}: {name}: {detail}", flush=True)

    def step(self, name: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # one failed step is reported; the next steps still run
            import traceback

            traceback.print_exc()
            self.record(name, False, f"{type(exc).__name__}: {exc}")

    # the steps
    def clean_night(self) -> None:
        night = self.wait_night(self.trigger("clean"))
        self.baseline = self.verify(night, self.ids, "clean night")
        self.timings["2 workers"] = night.seconds
        self.record("clean night on 2 Celery workers", True, f"success in {night.seconds:.0f}s")

    def sigkill(self) -> None:
        run_id = self.trigger("sigkill")
        task, map_index, _, host, try_number = wait_for("a tag task running on a worker",
                                                        lambda: self.running_tag(run_id), 300, 0.3)
        proc = self.stack.procs[host]
        tree = [proc.pid, *descendants(proc.pid)]
        log(f"SIGKILL {host}: pid {proc.pid} and every process below it {tree[1:]} (a dead worker machine), "
            f"while it runs tag[{map_index}] try {try_number}")
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        self.stack.procs.pop(host)
        self.killed = host
        night = self.wait_night(run_id)
        day = self.verify(night, self.ids, "after SIGKILL")
        final = next(t for t in night.tasks if t[0] == "tag" and t[1] == map_index)
        tries = [h for h in history_rows(self.env, run_id) if h[0] == "tag" and h[1] == map_index]
        log(f"tag[{map_index}]: history {tries}; final {final}")
        assert final[4] > try_number, f"tag[{map_index}] was not retried: {final}"
        assert final[3] != host, f"tag[{map_index}] final try ran on {final[3]}, the killed worker"
        assert any(h[2] == try_number and h[4] == host for h in tries), f"no record of the killed try: {tries}"
        assert day["rows"] == self.baseline["rows"], "published rows differ from the clean night"
        self.record("worker SIGKILL during tag", True,
                    f"tag[{map_index}] try {try_number} on {host} killed; try {final[4]} succeeded on {final[3]}; "
                    f"night success, {len(self.ids)} articles, none lost or duplicated, rows identical to the clean night")

    def retrigger(self) -> None:
        night = self.wait_night(self.trigger("retrigger"))
        day = self.verify(night, self.ids, "re-trigger")
        self.timings["1 worker"] = night.seconds
        parts = {d: len(wh_files(self.params.nightly.warehouse_dir, d)) for d in ("entities", "articles")}
        assert day["rows"] == self.baseline["rows"], "re-triggered day differs from the first one"
        assert all(n >= 1 for n in parts.values()), f"data files of the day: {parts}"
        hosts = {t[3] for t in night.tasks if t[0] == "tag"}
        self.record("re-trigger replaces the day exactly", True,
                    f"same {len(day['rows']['articles'])} article / {len(day['rows']['entities'])} entity rows, "
                    f"{parts} Delta data files, no duplicates (ran on {sorted(hosts)} only: 1 worker, "
                    f"{night.seconds:.0f}s)")
        n = int(self.killed.rsplit("-", 1)[1])
        self.start_worker(n)
        self.wait_worker(n)

    def postgres_restart(self) -> None:
        run_id = self.trigger("postgres")
        wait_for("a tag task running", lambda: self.running_tag(run_id), 300, 0.3)
        old = self.stack.pg_pid()
        t = time.monotonic()
        self.stack.restart_postgres()
        log(f"Postgres restarted (pid {old} -> {self.stack.pg_pid()}) in {time.monotonic() - t:.1f}s during tag")
        exited: list[str] = []
        night = self.wait_night(run_id, on_poll=lambda: exited.extend(self.stack.restart_exited()))
        for name in exited:
            if name.startswith("worker"):
                self.wait_worker(int(name.rsplit("-", 1)[1]))
        loud = f"components that exited on the restart (and were restarted): {exited}" if exited else \
            "no component exited"
        if night.state == "success":
            self.verify(night, self.ids, "after Postgres restart")
            self.record("Postgres restart mid-run", True, f"the run recovered and succeeded; {loud}")
            return
        print(f"!!!!! Postgres restart: run {night.run_id} is {night.state}; {loud}; re-triggering", flush=True)
        first = night.state
        night = self.wait_night(self.trigger("postgres-retrigger"), on_poll=self.stack.restart_exited)
        self.verify(night, self.ids, "re-trigger after Postgres restart")
        self.record("Postgres restart mid-run", True,
                    f"the run failed loudly ({first}; {loud}); the re-trigger succeeded")

    def publish_halfway(self) -> None:
        before = self.snapshot()
        ids = self.write_inbox(extra=4)  # the day changed: a replacement would be visible
        faults, point = mod("faults"), "publish.committed_entities"  # entities committed, articles/rejects/record not
        folder = Path(self.env["HEALTHNER_FAULTS"])
        stop = threading.Event()

        def keep_armed() -> None:  # a fault fires once; re-armed so that every try of publish dies there
            while not stop.is_set():
                if not (folder / point).exists():
                    faults.arm(folder, point, faults.KILL)
                stop.wait(0.2)

        armer = threading.Thread(target=keep_armed, daemon=True)
        armer.start()
        log(f"fault {point}: every publish try is killed (os._exit) between its table commits, before the night record")
        try:
            night = self.wait_night(self.trigger("publish-fails"))
        finally:
            stop.set()
            armer.join()
            (folder / point).unlink(missing_ok=True)
        states = {(t[0], t[1]): t[2] for t in night.tasks}
        assert night.state == "failed" and states[("publish", -1)] == "failed", f"expected a failed publish: {night}"
        after = self.snapshot()
        intact = after == before
        if not intact:
            print(f"!!!!! after the failed publish the published day changed: {before['version']} -> {after['version']}",
                  flush=True)
        night = self.wait_night(self.trigger("publish-retrigger"))
        self.verify(night, ids, "re-trigger after the failed publish")
        self.ids = ids
        self.record("publish failing halfway leaves the previous day complete", intact,
                    (f"publish killed on all {RETRIES + 1} tries; the previous day (version {before['version']}) "
                     f"row-identical after it; the re-trigger published the new day ({len(ids)} articles)") if intact else
                    f"the previous day was NOT kept: version {before['version']} -> {after['version']}")

    def snapshot(self) -> dict:
        """The published day as readers see it: its recorded night and every row of its three tables."""
        day = self.published()
        return {"version": day["manifest"]["night"], "rows": day["rows"]}

    def s3(self) -> None:
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=self.env["AWS_ENDPOINT_URL"], key="testing", secret="testing")
        fs.mkdir(S3_BUCKET)
        self.write_params(self.source, storage="s3")
        ids = self.write_inbox()
        night = self.wait_night(self.trigger("s3"))
        self.verify(night, ids, "s3")
        wh = mod("warehouse")
        warehouse = self.params.nightly.warehouse_dir
        days, files = wh.published_days(warehouse), wh_files(warehouse, "entities")
        assert DT in days and files and all(f.startswith("s3://") and fs.exists(f) for f in files), (days, files)
        assert fs.exists(f"{warehouse}/entities/_delta_log/_last_checkpoint"), "no Delta log on s3"
        self.record("inbox and warehouse on s3:// (moto server)", True,
                    f"night success on {warehouse}; published days {days}; entities {files}")
        self.write_params(self.source)

    def no_pool(self) -> None:
        env = {**os.environ, **self.env}
        subprocess.run([AIRFLOW, "pools", "delete", TAG_POOL], env=env, check=True, capture_output=True)
        try:
            night = self.wait_night(self.trigger("no-pool"), timeout=180)
        finally:
            subprocess.run(page_command("airflow pools set"), env=env, check=True, capture_output=True)
        states = {(t[0], t[1]): t[2] for t in night.tasks}
        assert night.state == "failed" and states[("discover", -1)] == "failed", night
        log_file = next((self.root / "airflow" / "logs").glob(f"dag_id={DAG_ID}/run_id={night.run_id}/task_id=discover/*.log"))
        assert f"pool {TAG_POOL} does not exist" in log_file.read_text(encoding="utf-8"), log_file
        self.record("without its pool the run fails at once", True,
                    f"failed in {night.seconds:.0f}s at discover, which names the pool and `airflow pools set`")

    def backfill(self) -> None:
        from datetime import date, timedelta

        command = page_command("airflow backfill create")
        first, last, most = (command[command.index(flag) + 1] for flag in ("--from-date", "--to-date", "--max-active-runs"))
        start, end = date.fromisoformat(first), date.fromisoformat(last)
        days = [str(start + timedelta(n)) for n in range((end - start).days + 1)]
        records = mod("batch").sample_articles(read_sentences(self.params.prepare.output_dir / "test.parquet"), 8, first)
        for day in days:
            mod("batch").write_inbox_day(self.params.nightly.inbox_dir, day, records)
        subprocess.run(command, env={**os.environ, **self.env}, check=True, capture_output=True)
        log(f"{' '.join(command[1:])}: {len(days)} days")
        sql = "SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id=%s AND run_type='backfill' ORDER BY run_id"

        def finished() -> list[tuple] | None:
            rows = db_rows(self.env, sql, (DAG_ID,))
            return rows if len(rows) == len(days) and all(r[1] in ("success", "failed") for r in rows) else None

        runs = wait_for("the backfill's runs", finished, NIGHT_TIMEOUT_S * 2, 2)
        assert all(r[1] == "success" for r in runs), runs
        overlap = max(sum(1 for o in runs if o[2] <= r[2] < o[3]) for r in runs)  # runs going when each started
        assert overlap <= int(most), f"{overlap} backfill runs at once, more than --max-active-runs {most}"
        extras = db_rows(self.env, "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE "
                                   "a.uri = 'healthner://warehouse/entities' AND e.source_run_id = ANY(%s)",
                         ([r[0] for r in runs],))
        by_day = {e[0]["dt"]: e[0] for e in extras}
        assert sorted(by_day) == days, by_day
        for day in days:
            night = mod("warehouse").read_night(self.params.nightly.warehouse_dir, day)
            assert by_day[day]["version"] == night["night"] and by_day[day]["rows"]["articles"] == len(records)
            assert by_day[day]["model_version"], by_day[day]
        self.record("backfill of three days (airflow backfill create)", True,
                    f"{len(days)} runs success, at most {overlap} at once (--max-active-runs {most}); each day published; "
                    f"asset events: {by_day[days[0]]}")

    def run(self) -> int:
        s = self.stack
        for folder in ("logs",):
            (self.root / folder).mkdir()
        s.start_postgres()
        s.start("redis", ["redis-server", "--port", str(s.ports.redis), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(self.root)])
        s.start("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s.ports.moto)])
        self.source = self.model_source()
        (self.root / "airflow").mkdir()
        (self.opt / "data").mkdir(parents=True)
        (self.opt / "models").symlink_to(self.source / "models")
        self.write_params(self.source)
        self.ids = self.write_inbox()
        self.start_airflow(self.source)
        steps = {"clean": self.clean_night, "sigkill": self.sigkill, "retrigger": self.retrigger,
                 "postgres": self.postgres_restart, "publish": self.publish_halfway, "s3": self.s3,
                 "backfill": self.backfill, "pool": self.no_pool}
        only = [x for x in os.environ.get("E2E_ONLY", "").split(",") if x] or list(steps)
        for name, fn in steps.items():
            if name in only:
                log(f"== {name}")
                self.step(name, fn)
        print("\n== e2e summary", flush=True)
        for name, ok, detail in self.results:
            print(f"{'PASSED' if ok else 'FAILED'}  {name}: {detail}")
        for workers, seconds in self.timings.items():
            print(f"night ({ARTICLES} articles, {SHARDS} shards) with {workers}: {seconds:.0f}s")
        return 0 if self.results and all(ok for _, ok, _ in self.results) else 1


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
        code = E2E(stack).run()
    finally:
        stack.cleanup()
        print(f"e2e wall time {time.monotonic() - T0:.0f}s; exit {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
