"""Shared fixtures: a tiny profile of the real pipeline, run once per session with real `dvc repro`.

The tiny profile keeps the real corpus files' first sentences (each file sliced, never edited)
and shrinks the encoders and training so the whole pipeline runs in a minute or two; the DAG
tests tag with the ensemble it produces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SLICE_SENTENCES = 120

TINY_ENCODER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
TINY_OVERRIDES = {
    "model": {"lstm_hidden": 32},
    # a high learning rate so ~10 s per slot gives a model that finds entities (the night tests need some)
    "train": {"epochs": 8, "batch_size": 16, "max_steps": 200, "learning_rate": 0.01, "torch_threads": 1, "patience": 8},
    "stack": {"n_estimators": 10, "cv_folds": 2, "n_jobs": 1},
    "evaluate": {"combinations": [["bert"], ["bert", "roberta"], ["bert", "roberta", "electra", "albert"]]},
    "nightly": {"sample_articles": 8, "shards": 2},
    # the teacher (the vote) labels a few unlabeled sentences, every one kept (a tiny teacher is never sure);
    # two student seeds side by side (workers), soft targets, silver epochs first, the slot's own architecture
    "teach": {"max_sentences": 60, "min_confidence": 0.0},
    "student": {"slot": "bert", "overrides": {}, "seeds": [13, 14], "workers": 2, "targets": "soft",
                "curriculum": "silver_then_gold"},
}


def slice_corpus_file(source: Path, target: Path, sentences: int) -> None:
    """The first `sentences` sentences of a real corpus file, bytes unchanged."""
    raw = source.read_bytes()
    if source.suffix == ".jsonl":
        kept = b"".join(raw.splitlines(keepends=True)[:sentences])
    else:
        blocks = raw.split(b"\r\n\r\n")
        kept = b"\r\n\r\n".join(blocks[:sentences]) + b"\r\n\r\n"
    target.write_bytes(kept)


def tiny_params(corpus_dir: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["corpus_dir"] = str(corpus_dir)
    for folder in ("lexicon_dir", "unlabeled_dir"):  # the real lexicon and unlabeled text, read-only
        params["data"][folder] = str((REPO / params["data"][folder]).resolve())
    for slot in params["encoders"].values():
        slot["config"] = {**slot["config"], **TINY_ENCODER}
        if "embedding_size" in slot["config"]:
            slot["config"]["embedding_size"] = 16
    for section, fields in TINY_OVERRIDES.items():
        params[section] = {**params[section], **fields}
    return params


def copy_repo(target: Path) -> None:
    """The working tree as git sees it (tracked and untracked-not-ignored files), as a fresh git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.email=ci@healthner", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny profile"], cwd=target, check=True)


def pipeline_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, env=pipeline_env(), capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A temporary copy of the repo on the tiny profile, after a real `dvc repro`."""
    root = tmp_path_factory.mktemp("tiny")
    corpus = root / "corpus"
    corpus.mkdir()
    real = REPO / yaml.safe_load((REPO / "params.yaml").read_text())["data"]["corpus_dir"]
    for entry in yaml.safe_load((REPO / "params.yaml").read_text())["data"]["files"]:
        if entry.get("enabled", True):  # optional extra sources (off) are not in the shared corpus
            slice_corpus_file(real / entry["name"], corpus / entry["name"], SLICE_SENTENCES)
    repo = root / "repo"
    repo.mkdir()
    copy_repo(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(corpus), allow_unicode=True), encoding="utf-8")
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (repo / "repro.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    return repo


@pytest.fixture(scope="session")
def tiny_ensemble(tiny_repo) -> Path:
    """The ensemble folder that the tiny pipeline trained (base models + forest)."""
    ensemble = tiny_repo / "models" / "ensemble"
    assert (ensemble / "ensemble.json").is_file()
    return ensemble


@pytest.fixture(scope="session")
def tiny_metrics(tiny_repo) -> dict:
    return json.loads((tiny_repo / "reports" / "metrics.json").read_text())


@pytest.fixture(scope="session")
def random_ensemble(tmp_path_factory) -> Path:
    """An ensemble folder of tiny random-weight members and a random forest (seconds, no training):
    for tests of loading, integrity and the tag path, not of quality."""
    from tests.tiny_models import untrained_ensemble

    return untrained_ensemble(tmp_path_factory.mktemp("random_ensemble"))
