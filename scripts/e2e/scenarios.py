"""The e2e run's scenarios, one method each, in the order the run takes them (the package's docstring
says what each asserts): a clean night, a worker killed, a re-trigger, Postgres restarted, publish
failing halfway, s3://, a backfill, a missing pool."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import s3fs

from healthner.corpus.readers import read_sentences
from healthner.nightly import batch, faults
from healthner.nightly import warehouse as wh
from scripts.e2e.client import db_rows, history_rows
from scripts.e2e.harness import Harness
from scripts.e2e.settings import (
    AIRFLOW,
    DAG_ID,
    DT,
    NIGHT_TIMEOUT_S,
    RETRIES,
    S3_BUCKET,
    TAG_POOL,
    log,
    page_command,
    wait_for,
)
from scripts.e2e.supervisor import descendants


def wh_files(warehouse: str, table: str) -> list[str]:
    """The data files of the published day in one Delta table (its current version), as URIs."""
    current = wh.load_table(warehouse, table)
    return current.file_uris(partition_filters=[("dt", "=", DT)])



class E2E(Harness):
    def clean_night(self) -> None:
        night = self.wait_night(self.trigger("clean"))
        self.baseline = self.verify(night, self.ids, "clean night")
        self.timings["2 workers"] = night.seconds
        self.record("clean night on 2 Celery workers", True, f"success in {night.seconds:.0f}s")

    def sigkill(self) -> None:
        run_id = self.trigger("sigkill")
        _, map_index, _, host, try_number = wait_for("a tag task running on a worker",
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
        point = "publish.committed_entities"  # entities committed, articles/rejects/record not
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

    def s3(self) -> None:
        fs = s3fs.S3FileSystem(endpoint_url=self.env["AWS_ENDPOINT_URL"], key="testing", secret="testing")
        fs.mkdir(S3_BUCKET)
        self.write_params(self.source, storage="s3")
        ids = self.write_inbox()
        night = self.wait_night(self.trigger("s3"))
        self.verify(night, ids, "s3")
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
        logs = self.root / "airflow" / "logs"
        log_file = next(logs.glob(f"dag_id={DAG_ID}/run_id={night.run_id}/task_id=discover/*.log"))
        assert f"pool {TAG_POOL} does not exist" in log_file.read_text(encoding="utf-8"), log_file
        self.record("without its pool the run fails at once", True,
                    f"failed in {night.seconds:.0f}s at discover, which names the pool and `airflow pools set`")

    def backfill(self) -> None:
        command = page_command("airflow backfill create")
        first, last, most = (command[command.index(flag) + 1] for flag in ("--from-date", "--to-date", "--max-active-runs"))
        start, end = date.fromisoformat(first), date.fromisoformat(last)
        days = [str(start + timedelta(n)) for n in range((end - start).days + 1)]
        records = batch.sample_articles(read_sentences(self.params.prepare.output_dir / "test.parquet"), 8, first)
        for day in days:
            batch.write_inbox_day(self.params.nightly.inbox_dir, day, records)
        subprocess.run(command, env={**os.environ, **self.env}, check=True, capture_output=True)
        log(f"{' '.join(command[1:])}: {len(days)} days")
        sql = ("SELECT run_id, state, start_date, end_date FROM dag_run WHERE dag_id=%s AND run_type='backfill' "
               "ORDER BY run_id")

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
            night = wh.read_night(self.params.nightly.warehouse_dir, day)
            assert by_day[day]["version"] == night["night"] and by_day[day]["rows"]["articles"] == len(records)
            assert by_day[day]["model_version"], by_day[day]
        self.record("backfill of three days (airflow backfill create)", True,
                    f"{len(days)} runs success, at most {overlap} at once (--max-active-runs {most}); each day published; "
                    f"asset events: {by_day[days[0]]}")
