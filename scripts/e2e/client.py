"""The e2e run's view of Airflow: its REST API (login, calls) and the metadata DB's runs and task tries."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import psycopg2

from scripts.e2e.settings import DAG_ID


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



@dataclass
class Night:
    run_id: str
    state: str
    seconds: float
    tasks: list[tuple]

