"""`make e2e` when no trained model exists: the test suite's tiny profile (real corpus files sliced,
tiny encoders, a short training) run through real `dvc repro student` in a temporary copy of the repo.

    PYTHONPATH=. python -m scripts.e2e.model TARGET   # writes TARGET/models/shipped and TARGET/data/prepared

Reuses tests/conftest.py (the same tiny profile the DAG tests tag with); ~2-4 minutes on 2 cores.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from tests.conftest import SLICE_SENTENCES, copy_repo, dvc, slice_corpus_file, tiny_params

REPO = Path(__file__).resolve().parents[2]


def build(target: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="healthner-e2e-model-") as tmp:
        root = Path(tmp)
        corpus, repo = root / "corpus", root / "repo"
        corpus.mkdir()
        repo.mkdir()
        real = REPO / params["data"]["corpus_dir"]
        for entry in params["data"]["files"]:
            if entry.get("enabled", True):  # optional extra sources (off) are not in the shared corpus
                slice_corpus_file(real / entry["name"], corpus / entry["name"], SLICE_SENTENCES)
        copy_repo(repo)  # the working tree as git sees it, as a fresh git repo (dvc needs one)
        (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(corpus), allow_unicode=True), encoding="utf-8")
        result = dvc(repo, "repro", "student")  # up to models/shipped (what the rule ships): no evaluate, no release
        if result.returncode != 0:
            sys.exit(f"tiny dvc repro failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(repo / "models", partial / "models")
        shutil.copytree(repo / "data" / "prepared", partial / "data" / "prepared")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target / "models" / "shipped"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve()))
