"""make bench's `healthner tag` memory against input size: the measuring code (a child's own peak
RSS through wait4, the flatness verdict) and one small run of the real command at two sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.stream_memory import child_peak_rss_mb, flatness, stream_memory
from healthner.config import load_params

REPO = Path(__file__).resolve().parents[2]
ALLOCATE = "import sys; block = bytearray(int(sys.argv[1]) << 20); block[::4096] = b'x' * len(block[::4096]); sys.exit(3)"


def test_a_childs_peak_is_its_own_and_grows_with_what_it_holds(tmp_path: Path) -> None:
    code, small = child_peak_rss_mb([sys.executable, "-c", ALLOCATE, "10"], tmp_path / "log")
    _, large = child_peak_rss_mb([sys.executable, "-c", ALLOCATE, "210"], tmp_path / "log")
    assert code == 3  # the exit code comes back
    assert 190 <= large - small <= 230  # the 200 MiB more it touched, not this process's memory


def test_flat_means_within_the_tolerance_of_the_smaller_input() -> None:
    runs = {"10x": {"chars": 1000, "peak_rss_mb": 119.0}, "1x": {"chars": 100, "peak_rss_mb": 100.0}}
    assert flatness(runs, 0.2) == {"ratio": 1.19, "tolerance": 0.2, "flat": True}
    runs["10x"]["peak_rss_mb"] = 121.0
    assert flatness(runs, 0.2)["flat"] is False


@pytest.mark.slow  # two fresh `healthner tag` processes
def test_the_real_command_runs_at_both_sizes(random_ensemble: Path) -> None:
    sentences = [s.text for s in _some_sentences()]
    params = load_params(REPO / "params.yaml").with_updates(
        bench={"model_dir": str(random_ensemble), "stream_chars": 2000, "article_chars": 200, "stream_factor": 3})
    result = stream_memory(params, sentences)
    one, three = result["runs"]["1x"], result["runs"]["3x"]
    assert three["articles"] == 3 * one["articles"] == 30 and three["chars"] == 3 * one["chars"]
    assert one["peak_rss_mb"] > 50 and three["peak_rss_mb"] > 50 and result["ratio"] > 0


def _some_sentences():
    from healthner.corpus.readers import read_conll

    params = load_params(REPO / "params.yaml")
    return read_conll(REPO / params.data.corpus_dir / "rocling2023_multiner_SM.txt", "SM").sentences[:50]
