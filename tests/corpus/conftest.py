"""Fixtures shared by the corpus tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthner.config import Params, load_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def base_params() -> Params:
    """params.yaml with the real corpus folder made absolute (skipped where the corpus is absent)."""
    params = load_params(REPO / "params.yaml")
    corpus = REPO / params.data.corpus_dir
    if not corpus.is_dir():
        pytest.skip(f"real corpus not found at {corpus}")
    return params.with_updates(data={"corpus_dir": corpus})
