"""Benchmarks that run in fresh processes: training steps, tagging memory, nights of the real DAG.

Each measured run is a child of a forkserver that has imported torch (and this module) once, so
every child starts as a new tagging or training process would, without paying the imports again,
and reports its own peak RSS with its result. The night runs the real DAG file with `dag.test()`
on its own SQLite metadata DB and a generated params file (temp inbox and warehouse).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from math import ceil
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from healthner.config import Params
from healthner.nightly.batch import SAMPLE_JOIN, write_inbox_day
from healthner.nightly.tagger import Tagger
from healthner.sections.tagging import NightlyParams
from scripts.dag_constants import TAG_POOL

REPO_DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_ID = "healthner_nightly"
PARAMS_ENV = "HEALTHNER_PARAMS"  # read by the DAG file and its tasks
KIB_PER_MIB = 1024  # Linux reports ru_maxrss in KiB
LOG_TAIL_CHARS = 3000  # of Airflow's output, quoted when a night fails (its temp folder is then gone)
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"

Call = tuple[Callable[..., dict], tuple]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (or of a child it waited for, if larger), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / KIB_PER_MIB


def _child(conn, cwd: str, env: Mapping[str, str], target: Callable[..., dict], args: tuple) -> None:
    os.chdir(cwd)
    os.environ.update(env)
    try:
        result = {**target(*args), "peak_rss_mb": peak_rss_mb()}
    except BaseException:  # noqa: BLE001 - the parent re-raises it with the child's traceback
        result = {"error": traceback.format_exc()}
    conn.send(result)
    conn.close()


def isolated_many(calls: Sequence[Call], env: Mapping[str, str] | None = None) -> list[dict]:
    """Run every call at the same time, each in its own fresh process; results in call order."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    running = []
    for target, args in calls:
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_child, args=(send, os.getcwd(), dict(env or {}), target, args))
        process.start()
        send.close()
        running.append((process, receive))
    results = []
    for process, receive in running:
        try:
            results.append(receive.recv())
        except EOFError:
            results.append({"error": f"benchmark process {process.pid} died without a result"})
        process.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"benchmark process failed:\n{errors[0]}")
    return results


def isolated(target: Callable[..., dict], *args, env: Mapping[str, str] | None = None) -> dict:
    return isolated_many([(target, args)], env)[0]


# --- work done in the fresh processes --------------------------------------------------------------


def load_tagger(params: Params, precision: str | None = None, runtime: str | None = None) -> Tagger:
    """The benchmarked ensemble on tag.device with its batch size, in `precision` under `runtime`
    (None: as params.tag says)."""
    chosen = {key: value for key, value in (("precision", precision), ("runtime", runtime)) if value is not None}
    return Tagger.load(params.bench.model_dir, params.tag.model_copy(update=chosen))


def tagging_run(params: Params, texts: list[str]) -> dict:
    """Load the ensemble and tag the texts once, as a fresh tagging process would."""
    tagger = load_tagger(params)
    start = time.perf_counter()
    tagger.tag(texts)
    return {"seconds": time.perf_counter() - start}


def training_run(params: Params, slot: str) -> dict:
    """Time `bench.train_steps` optimiser steps of the real training code on the slot's train windows."""
    from healthner.model.train import _Trainer, bucketed_batches, seed_everything

    cfg, bench = params.train, params.bench
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    trainer = _Trainer(params, slot)
    opt, sched = trainer.optimiser()
    trainer.model.train()
    lengths = [len(ids) for ids in trainer.train_windows.input_ids]
    planned = bench.train_warmup_steps + bench.train_steps
    batches: list[list[int]] = []
    while len(batches) < planned:  # a small training split may have fewer batches than planned
        batches += bucketed_batches(lengths, cfg.batch_size, trainer.rng)
    for index in batches[: bench.train_warmup_steps]:
        trainer.step(trainer.train_windows, index, opt, sched)
    chars_before, start = trainer.train_chars, time.perf_counter()
    for index in batches[bench.train_warmup_steps : planned]:
        trainer.step(trainer.train_windows, index, opt, sched)
    seconds = time.perf_counter() - start
    return {
        "seconds_per_step": seconds / bench.train_steps,
        "chars_per_s": (trainer.train_chars - chars_before) / seconds,
        "epoch_steps": ceil(len(trainer.train_windows) / cfg.batch_size),
        "device": str(trainer.device),
    }


def night_run(params_file: str, date: str, log: str) -> dict:
    """One `dag.test()` of the real DAG (env: its Airflow home and HEALTHNER_PARAMS); output to `log`."""
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), sys.stdout.fileno())
        os.dup2(sink.fileno(), sys.stderr.fileno())
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO_DAGS)).dags[DAG_ID]
    start = time.perf_counter()
    state = dag.test(run_conf={"dt": date}).state  # the DAG's param for a given day
    seconds = time.perf_counter() - start
    state = getattr(state, "value", state)
    if state != "success":
        tail = Path(log).read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"night with {params_file}: DAG run {state}; end of the Airflow log:\n{tail}")
    return {"seconds": seconds}


def night_step_run(step: str, *args) -> dict:
    """One step of the night, the function its DAG task calls (healthner.nightly.night), in this fresh
    process as an executor's task process runs it, with the params the DAG reads ($HEALTHNER_PARAMS);
    its return value under "result"."""
    from healthner.nightly import night

    params = night.night_params(os.environ[PARAMS_ENV], str(REPO_DAGS.parent))
    return {"result": getattr(night, step)(params, *args)}


# --- the night -------------------------------------------------------------------------------------


def night_records(sentences: Sequence[str], count: int, chars: int, date: str) -> list[dict]:
    """`count` inbox records of consecutive sentences (cycling), each joined until `chars` long."""
    cursor = itertools.cycle([s for s in sentences if s])
    records = []
    for number in range(count):
        parts = [next(cursor)]
        size = len(parts[0])
        while size < chars:
            parts.append(next(cursor))
            size += len(SAMPLE_JOIN) + len(parts[-1])
        records.append({"article_id": f"bench-{number:06d}", "source": "bench", "published_at": date,
                        "text": SAMPLE_JOIN.join(parts)})
    return records


def write_params(params: Params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True), encoding="utf-8")
    return path


def airflow_env(home: Path, tag_slots: int = NightlyParams().tag_slots) -> dict[str, str]:
    """A throwaway Airflow: its own home and SQLite metadata DB, migrated once, with the DAG's tag
    pool (whose absence fails a night at its first task)."""
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "HEALTHNER_RETRIES": "0",  # a failed night fails the benchmark at once
    }
    home.mkdir(parents=True, exist_ok=True)
    for args in (["db", "migrate"], ["pools", "set", TAG_POOL, str(tag_slots), "healthner tag tasks"]):
        done = subprocess.run([str(AIRFLOW_BIN), *args], env={**os.environ, **env}, capture_output=True, text=True,
                              check=False)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-LOG_TAIL_CHARS:]}")
    return env


def night_params(params: Params, root: Path, shards: int, longest: int, parallel: bool) -> Params:
    """A night's params: temp inbox and warehouse, `shards` shards; `parallel`: their tag tasks run at
    once (each takes its share of the cores, batch.shard_tag_params), else one after another (dag.test)."""
    nightly = params.nightly
    return params.with_updates(nightly={
        "inbox_dir": str(root / "inbox"), "warehouse_dir": str(root / f"warehouse-{shards}"),
        "model_dir": str(params.bench.model_dir.resolve()), "shards": shards,
        "max_article_chars": max(nightly.max_article_chars, longest), "tag_slots": shards if parallel else 1,
    })


def parallel_night_seconds(date: str, env: Mapping[str, str]) -> float:
    """The night as a LocalExecutor runs the DAG: each step its tasks call, in its own fresh process,
    the shards' tag tasks all at once; discover, stage, check and publish included (scheduler latency not)."""
    start = time.perf_counter()
    files = isolated(night_step_run, "discover", date, env=env)["result"]
    shards = isolated(night_step_run, "stage", date, files, env=env)["result"]
    tagged = isolated_many([(night_step_run, ("tag", shard)) for shard in shards], env)
    version_dir = isolated(night_step_run, "check", [t["result"] for t in tagged], env=env)["result"]
    isolated(night_step_run, "publish", version_dir, env=env)
    return time.perf_counter() - start


def night_benchmark(params: Params, sentences: Sequence[str], bar: tqdm) -> dict[int, dict[str, list[float]]]:
    """Per shard count: DAG wall seconds and peak RSS per run, and parallel tag-phase seconds."""
    bench, date = params.bench, params.nightly.sample_date
    records = night_records(sentences, bench.night_articles, bench.article_chars, date)
    runs: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="healthner-bench-") as tmp:
        root = Path(tmp)
        write_inbox_day(str(root / "inbox"), date, records)
        env = airflow_env(root / "airflow")
        longest = max(len(r["text"]) for r in records)
        for shards in bench.night_shards:
            params_file = write_params(night_params(params, root, shards, longest, False), root / f"params-{shards}.yaml")
            parallel_file = write_params(night_params(params, root, shards, longest, True),
                                         root / f"params-{shards}-parallel.yaml")
            found = runs[shards] = {"dag_seconds": [], "peak_rss_mb": [], "parallel_night_seconds": []}
            for _ in range(bench.night_repeats or bench.repeats):
                bar.set_postfix_str(f"night, {shards} shard(s)")
                night = isolated(night_run, str(params_file), date, str(root / f"airflow-{shards}.log"),
                                 env={**env, PARAMS_ENV: str(params_file)})
                found["dag_seconds"].append(night["seconds"])
                found["peak_rss_mb"].append(night["peak_rss_mb"])
                bar.update()
                found["parallel_night_seconds"].append(parallel_night_seconds(date, {**env, PARAMS_ENV: str(parallel_file)}))
                bar.update()
    return runs
