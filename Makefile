# The two commands: `make run` (train, evaluate, tag a sample night) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
# dvc stages call `healthner` by name (make release, make repro)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv runtime run test e2e bench ablate repro release student lint clean

# torch: a wheel pip already finds without an index (a local wheel folder or mirror in pip's own
# config) when there is one; else the CPU build from PyTorch's CPU wheel index on a machine without an
# NVIDIA GPU (no nvidia-smi), the default index's CUDA build with one. `make TORCH_INDEX= venv`: the
# default index only.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,$(TORCH_CPU_INDEX))
TORCH_PIN = $(shell grep -E '^torch==' requirements.lock)

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --dry-run --no-index --no-deps "$(TORCH_PIN)" >/dev/null 2>&1 \
	  && $(PY) -m pip install -q "$(TORCH_PIN)" \
	  || $(PY) -m pip install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH_PIN)"
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

## everything (requirements.lock: the core, every extra, the test tools): what every target below needs
venv: $(VENV)/.installed

## only the core (requirements/runtime.lock): healthner tag | query | validate, no Airflow, DVC or GX
runtime:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/runtime.lock
	$(PY) -m pip install -q --no-deps -e .

## the main job: validate -> prepare -> train x4 -> stack -> evaluate (dvc repro), then a sample night
run: venv
	bash scripts/run_pipeline.sh

## ruff (pyproject.toml [tool.ruff]): the checks the code is held to
lint: venv
	$(BIN)/ruff check .

## the test suite (code, data, model, pipeline)
test: venv
	$(BIN)/pytest -q tests

## the nightly DAG on CeleryExecutor + Redis + Postgres (the compose topology, natively), with faults
e2e: venv
	PY=$(PY) bash scripts/e2e.sh

## benchmarks (benchmarks/, outside the package): BENCHMARKS.md and reports/bench.json
bench: venv
	$(PY) -m benchmarks

## the paper's Table 3 on one slot (params.yaml ablation): reports/ablation/table3.md
ablate: venv
	$(BIN)/healthner ablate

repro: venv
	$(BIN)/dvc repro evaluate

## the production model: what ships, retrained on every labeled sentence (after make run)
release: venv
	$(BIN)/dvc repro release

## teacher and student alone (make run runs them too): unlabeled -> teacher -> teach -> student; the rule's choice in
## models/shipped (docs/student.md); then the results tables get the teacher's and the student's rows
student: venv
	$(BIN)/dvc repro student
	$(PY) scripts/render_results.py

clean:
	rm -rf data models reports dvclive .airflow
