"""The e2e run's harness: the stack set up (model, params, inbox, Airflow's components), nights
triggered through the REST API and awaited in the metadata DB, a published day read back and
reconciled with its inbox, each step's result recorded. The scenarios (scenarios.py) build on it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import traceback
from pathlib import Path

import yaml

from healthner.config import load_params
from healthner.corpus.readers import read_sentences
from healthner.nightly import batch, query
from healthner.nightly import warehouse as wh
from scripts.e2e.client import Api, Night, run_state, task_rows
from scripts.e2e.settings import (
    AIRFLOW,
    ARTICLES,
    BAD_LINES,
    DAG_ID,
    DT,
    LAYOUT,
    NIGHT_TIMEOUT_S,
    REPO,
    S3_BUCKET,
    SHARDS,
    TAG_POOL,
    TAG_POOL_SLOTS,
    code_hash,
    free_port,
    log,
    page_command,
    wait_for,
)
from scripts.e2e.supervisor import Stack


class Harness:
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
        """<folder holding models/shipped and data/prepared>: the repo's trained model, or a tiny one."""
        trained = any((REPO / "models" / kind / "ensemble.json").is_file() for kind in ("release", "shipped"))
        if trained and (REPO / "data/prepared/test.parquet").is_file():
            log("model: the trained models/release, else models/shipped")
            return REPO
        cache = Path(os.environ.get("E2E_MODEL_CACHE", REPO / ".cache" / "e2e-model")) / code_hash()
        if not (cache / "models" / "shipped" / "ensemble.json").is_file():
            log(f"model: none trained; training the tests' tiny profile into {cache} (once)")
            subprocess.run([sys.executable, "-m", "scripts.e2e.model", str(cache)], check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        log(f"model: tiny shipped model from {cache}")
        return cache

    def write_params(self, source: Path, storage: str = "local") -> None:
        paths = {key: str(self.opt / rel) for key, rel in LAYOUT.items()}
        if storage == "s3":
            paths.update(inbox_dir=f"s3://{S3_BUCKET}/inbox", warehouse_dir=f"s3://{S3_BUCKET}/warehouse")
        params = load_params(REPO / "params.yaml").with_updates(
            prepare={"output_dir": str(source / "data" / "prepared")},
            tag={"torch_threads": 1},
            nightly={**paths, "shards": SHARDS, "sample_articles": ARTICLES,
                     "sample_date": DT, "chunk_articles": 8},
        )
        Path(self.env["HEALTHNER_PARAMS"]).write_text(
            yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True), encoding="utf-8")
        self.params = params

    def write_inbox(self, extra: int = 0) -> set[str]:
        """The sample day (test-split articles) plus two bad lines; `extra` more articles in a 2nd file."""
        records = batch.sample_articles(
            read_sentences(self.params.prepare.output_dir / "test.parquet"),
            ARTICLES, DT)
        fs, root = wh.open_root(self.params.nightly.inbox_dir)
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
        lost, extra = sorted(ids - set(article_ids))[:5], sorted(set(article_ids) - ids)[:5]
        assert set(article_ids) == ids, f"{label}: lost {lost}, extra {extra}"
        n_entities = sum(day["articles"].column("n_entities").to_pylist())
        assert len(day["rows"]["entities"]) == n_entities, f"{label}: entity rows != sum(n_entities)"
        assert len(day["rows"]["rejects"]) == len(BAD_LINES), f"{label}: rejects {day['rows']['rejects']}"
        assert day["manifest"]["lines_read"] == len(ids) + len(BAD_LINES), f"{label}: lines_read {day['manifest']}"
        summary = (f"{len(article_ids)} articles (= inbox), {n_entities} entities, {len(BAD_LINES)} rejects, "
                   f"lines_read {day['manifest']['lines_read']}; GX check task success")
        if "://" not in self.params.nightly.warehouse_dir:
            counts = query.run_query(
                self.params.nightly.warehouse_dir,
                f"SELECT count(DISTINCT article_id) AS articles, count(*) AS entities FROM entities WHERE dt = '{DT}'")
            print(counts, flush=True)
        log(f"{label}: {summary}")
        return day

    def record(self, name: str, ok: bool, detail: str) -> None:
        self.results.append((name, ok, detail))
        print(f"{'PASSED' if ok else 'FAILED'}: {name}: {detail}", flush=True)

    def step(self, name: str, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one failed step is reported; the next steps still run
            traceback.print_exc()
            self.record(name, False, f"{type(exc).__name__}: {exc}")


    def snapshot(self) -> dict:
        """The published day as readers see it: its recorded night and every row of its three tables."""
        day = self.published()
        return {"version": day["manifest"]["night"], "rows": day["rows"]}
