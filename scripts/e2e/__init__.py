"""`make e2e`: the nightly DAG on the compose file's topology, natively on this machine, with faults.

    PYTHONPATH=. python -m scripts.e2e   # as scripts/e2e.sh runs it

Postgres (metadata DB + Celery result backend) and Redis (Celery broker) on 127.0.0.1 with
throwaway data folders; Airflow's api-server, scheduler, dag-processor, triggerer and two Celery
workers, each its own process; a moto S3 server on 127.0.0.1. The Airflow settings come from
docker/airflow.env (the compose file's env_file) plus `native_env()` in settings.py (addresses, folders).
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
