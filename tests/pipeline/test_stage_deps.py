"""Every DVC stage lists all the code it runs: the import closure of its CLI command (scripts/stage_deps.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from scripts import stage_deps

REPO = Path(__file__).resolve().parents[2]


def test_each_stage_lists_every_module_it_runs_and_none_it_does_not() -> None:
    wrong = {s.stage: (s.missing, s.stale) for s in stage_deps.check() if s.missing or s.stale}
    assert not wrong, f"dvc.yaml code deps out of date (run python scripts/stage_deps.py --write): {wrong}"


def test_train_runs_the_bilstm_through_the_network_and_lists_it() -> None:
    code = stage_deps.expected_code(stage_deps.stage_bodies(YAML(typ="safe").load(REPO / "dvc.yaml"))["train"])
    assert {"healthner/model/recurrent.py", "healthner/model/lac.py", "healthner/corpus/windows.py"} <= set(code)
    assert not any(p.startswith(("healthner/cli/", "healthner/nightly/")) for p in code)


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    for name in ("healthner", "dvc.yaml"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    return tmp_path


def test_a_stage_that_drops_a_module_it_runs_is_reported_missing(copy_of_repo: Path) -> None:
    dvc_yaml = copy_of_repo / "dvc.yaml"
    kept = [
        line for line in dvc_yaml.read_text(encoding="utf-8").splitlines()
        if line.strip() != "- healthner/model/recurrent.py"
    ]
    dvc_yaml.write_text("\n".join(kept) + "\n")
    train = {s.stage: s for s in stage_deps.check(copy_of_repo)}["train"]
    assert train.missing == ("healthner/model/recurrent.py",)


def test_a_new_import_inside_a_function_joins_the_closure(copy_of_repo: Path) -> None:
    network = copy_of_repo / "healthner/model/network.py"
    network.write_text(network.read_text(encoding="utf-8") + "\n\ndef _late():\n    from healthner.nightly import faults\n")
    train = {s.stage: s for s in stage_deps.check(copy_of_repo)}["train"]
    assert "healthner/nightly/faults.py" in train.missing and "healthner/nightly/__init__.py" in train.missing


def test_imports_only_for_type_checkers_do_not_count() -> None:
    import ast

    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from healthner.nightly import query\n")
    assert stage_deps.imported_modules(tree) == set()


def _dvc(repo: Path, *args: str) -> str:
    import subprocess
    import sys

    dvc = Path(sys.executable).with_name("dvc")
    done = subprocess.run([str(dvc), *args], cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_editing_the_bilstm_makes_dvc_report_the_trained_model_stale(copy_of_repo: Path) -> None:
    """Real DVC: lock train@bert over stand-in data and model files, then edit recurrent.py."""
    shutil.copy(REPO / "params.yaml", copy_of_repo / "params.yaml")
    for name in ("data/prepared/train.parquet", "data/prepared/dev.parquet", "data/prepared/bert/vocab.txt",
                 "data/lexicon/terms.tsv", "models/bert/model.safetensors", "reports/train/bert/plots/metrics/f1.tsv"):
        (copy_of_repo / name).parent.mkdir(parents=True, exist_ok=True)
        (copy_of_repo / name).write_text(name)
    _dvc(copy_of_repo, "init", "--no-scm", "-q")
    _dvc(copy_of_repo, "commit", "-f", "-q", "train@bert")
    assert "up to date" in _dvc(copy_of_repo, "status", "train@bert")
    bilstm = copy_of_repo / "healthner/model/recurrent.py"
    bilstm.write_text(bilstm.read_text(encoding="utf-8") + "\n# an edit\n")
    status = _dvc(copy_of_repo, "status", "train@bert")
    assert "changed deps" in status and "healthner/model/recurrent.py" in status
