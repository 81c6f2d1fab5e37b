#!/usr/bin/env bash
# `make run`: the whole job on the embedded default (local files, SQLite Airflow, CPU):
#   the corpus fetched when missing (healthner corpus fetch), dvc repro (validate -> prepare -> train x4 -> crossfit (off: seconds)
#   -> stack -> evaluate; unlabeled -> teacher -> teach -> student: the shipping rule with the student among the
#   candidates, into models/shipped), then one sample night through the real Airflow DAG with what ships, then a
#   DuckDB query over the published Delta tables.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$PWD/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export HEALTHNER_PARAMS="$PWD/params.yaml"

git rev-parse --git-dir >/dev/null 2>&1 || { echo "dvc repro needs a git repository: run from a clone" >&2; exit 1; }

echo "== 1/3 dvc repro evaluate student (then make release retrains what ships on every labeled sentence)"
# the corpus, the lexicon and the unlabeled text (params.yaml data.files, lexicon_files, unlabeled_files): fetched
# from their pinned sources, verified, when missing or damaged; folders already holding every file, valid, are only
# checked (no network, nothing written)
healthner corpus fetch
dvc repro evaluate student
dvc metrics show reports/metrics.json > reports/metrics_show.txt   # every model x split x type: wide
cat reports/table2.md                                               # F1 of each model and combination
python scripts/render_results.py                                    # README.md and docs/results.md tables from reports/

echo "== 2/3 a sample night through Airflow (inbox built from the held-out test split)"
read -r night warehouse slots < <(python -c "from healthner.config import load_params
nightly = load_params().nightly; print(nightly.sample_date, nightly.warehouse_dir, nightly.tag_slots)")
healthner sample-night
airflow db migrate >/dev/null
airflow pools set "$(python -m scripts.dag_constants TAG_POOL)" "$slots" "healthner tag tasks at once (nightly.tag_slots)" >/dev/null
airflow dags test healthner_nightly -c "{\"dt\": \"$night\"}"          # the DAG param dt: tag that day
python -c "import sys; from healthner.nightly.warehouse import read_night; sys.exit(read_night(sys.argv[1], sys.argv[2]) is None)" \
  "$warehouse" "$night" || { echo "the night $night was not published to $warehouse" >&2; exit 1; }

echo "== 3/3 entities per type in the published night (DuckDB over the Delta tables)"
healthner query "SELECT type, count(*) AS entities, round(avg(score), 3) AS mean_score
                 FROM entities WHERE dt = '$night' GROUP BY type ORDER BY entities DESC"
