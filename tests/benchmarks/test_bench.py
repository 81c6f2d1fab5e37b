"""`make bench` on the tiny ensemble: both reports written, every figure ordered, machine facts
present, and the peer pipeline labels one token per character of a Chinese sentence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.bench import naive_pipeline, naive_tags, run_benchmarks
from healthner.config import load_params
from healthner.corpus.labels import TAGS
from healthner.corpus.readers import read_sentences
from healthner.ensemble.kinds import MemberKind
from healthner.ensemble.shipped import save_ensemble
from healthner.ensemble.student import BEST_DIR, STUDENT

pytestmark = pytest.mark.slow
TINY_BENCH = {"repeats": 1, "throughput_chars": 300, "train_steps": 1, "train_warmup_steps": 0,
              "night_articles": 6, "article_chars": 100, "night_shards": [1, 2], "stream_chars": 300, "stream_factor": 2}
MACHINE_FACTS = ("cpu", "cores", "torch_threads", "torch", "gpu", "onnxruntime", "cpu_runs_bfloat16")


@pytest.fixture(scope="module")
def bench(tiny_repo: Path, tiny_ensemble: Path, tmp_path_factory) -> dict:
    """The bench over the tiny ensemble, with a trained student's best-seed folder beside it (its bert member)."""
    out = tmp_path_factory.mktemp("bench")
    save_ensemble(out / "student" / BEST_DIR, MemberKind([STUDENT]), {STUDENT: tiny_ensemble / "bert"})
    params = load_params(tiny_repo / "params.yaml").with_updates(
        prepare={"output_dir": str(tiny_repo / "data" / "prepared")},
        lexicon={"output": str(tiny_repo / "data" / "lexicon" / "terms.tsv")},  # the training timings featurise
        bench={**TINY_BENCH, "model_dir": str(tiny_ensemble), "report": str(out / "BENCHMARKS.md"),
               "json_report": str(out / "reports" / "bench.json")},
        student={"output_dir": str(out / "student")},
    )
    return {"params": params, "result": run_benchmarks(params)}


def figures(node: object) -> Iterator[dict]:
    """Every min / median / max figure anywhere in the result."""
    if isinstance(node, dict):
        if {"min", "median", "max"} <= node.keys():
            yield node
        else:
            for value in node.values():
                yield from figures(value)


def test_reports_are_written(bench: dict) -> None:
    params, result = bench["params"].bench, bench["result"]
    assert json.loads(params.json_report.read_text(encoding="utf-8")) == json.loads(json.dumps(result))
    report = params.report.read_text(encoding="utf-8")
    for heading in ("## Machine", "## Tagging throughput", "## Speed paths", "## Where the time goes", "## Training",
                    "## Peak memory", "## A night"):
        assert heading in report
    assert "[docs/speed.md](docs/speed.md)" in report  # what was measured once is prose there, not rendered here


def test_every_figure_is_min_median_max_over_the_repeats(bench: dict) -> None:
    result = bench["result"]
    found = list(figures(result))
    assert found and all(f["min"] <= f["median"] <= f["max"] and len(f["runs"]) >= 1 for f in found)
    rows = result["tagging"]["rows"]
    configured = result["tagging"]["configured"]
    assert configured == "onnx float32"  # tag.runtime and precision auto on this CPU: the members carry their graphs
    shipped_slots = set(result["tagging"]["stack_vs_naive"][configured])  # what the shipping rule kept
    assert shipped_slots and shipped_slots <= {"bert", "roberta", "electra", "albert"}
    assert {f"stack {configured}", "stack torch float32", "stack torch bfloat16", "stack torch int8"} <= rows.keys()
    assert {f"{slot} {kind}" for slot in shipped_slots for kind in ("decode", "naive")} <= rows.keys()
    dev_f1 = result["tagging"]["dev_f1"]
    assert set(dev_f1) == {"onnx float32", "torch float32", "torch bfloat16", "torch int8"}
    assert round(dev_f1["onnx float32"], 3) == round(dev_f1["torch float32"], 3)  # the speed path keeps F1
    assert set(result["training"]) == {"bert", "roberta", "electra", "albert"}
    assert set(result["night"]) == {"1", "2"} and result["memory"]["tagging_mb"]["median"] > 0
    stream = result["memory"]["tag_stream"]  # healthner tag's peak at 1x and 2x the input
    assert stream["runs"]["2x"]["chars"] == 2 * stream["runs"]["1x"]["chars"] and stream["ratio"] > 0
    assert "against its input size" in bench["params"].bench.report.read_text(encoding="utf-8")
    assert all(r > 0 for r in result["tagging"]["stack_vs_naive"][configured].values())
    assert "met" in result["goals"]["speedup"]
    assert result["tagging"]["stack_vs_naive_members"][configured] > 0
    assert result["tagging"]["floor_vs_naive"] > 0 and "stack forward passes" in rows
    assert result["speedup_vs_naive"] == result["goals"]["speedup"]["value"] > 0
    shipped = result["tagging"]["shipped"]  # the goal is on what `healthner tag` runs: tag.workers processes
    assert rows[shipped]["kind"] == "shipped" and shipped.startswith("shipped, ")
    assert result["speedup_vs_naive"] == min(result["tagging"]["shipped_vs_naive"].values())
    assert set(result["tagging"]["shipped_vs_naive"]) == shipped_slots
    assert result["night_10k_seconds"] == result["goals"]["night"]["projected_seconds"] > 0
    assert all(n["parallel_night_seconds"]["median"] > 0 for n in result["night"].values())


def test_machine_facts_are_present(bench: dict) -> None:
    machine = bench["result"]["machine"]
    assert all(key in machine for key in MACHINE_FACTS)
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1


def test_naive_pipeline_labels_each_chinese_character(tiny_repo: Path, tiny_ensemble: Path) -> None:
    sentence = read_sentences(tiny_repo / "data" / "prepared" / "test.parquet")[0].text
    chinese = "".join(c for c in sentence if "\u4e00" <= c <= "\u9fff")
    tags = naive_tags(naive_pipeline(tiny_ensemble / "bert", "cpu"), chinese)
    assert len(chinese) > 0 and len(tags) == len(chinese) and set(tags) <= set(TAGS)


def test_the_onnxruntime_graphs_are_timed_per_operator(bench: dict) -> None:
    """onnxruntime's own profiler: each shipped member's emissions graph (an LSTM inside) and LAC's (a GRU)."""
    operators = bench["result"]["profile"]["operators"]
    shipped_slots = set(bench["result"]["tagging"]["stack_vs_naive"][bench["result"]["tagging"]["configured"]])
    assert {f"{slot} emissions" for slot in shipped_slots} <= operators.keys()
    assert all(operators[f"{slot} emissions"]["LSTM"] > 0 for slot in shipped_slots)
    reads_lac = any(bench["params"].for_slot(slot).model.lac == "frozen" for slot in shipped_slots)
    assert ("LAC states" in operators) == reads_lac
    assert not reads_lac or operators["LAC states"]["GRU"] > 0
    assert "Inside the onnxruntime graphs" in bench["params"].bench.report.read_text(encoding="utf-8")


def test_a_trained_student_is_timed_beside_the_shipped_model_and_the_naive_pipelines(bench: dict) -> None:
    tagging = bench["result"]["tagging"]
    row = tagging["rows"][tagging["student"]]
    assert row["kind"] == "student" and row["chars_per_s"]["median"] > 0
    assert set(tagging["student_vs_naive"]) == set(tagging["shipped_vs_naive"])  # against every member's naive pipeline
    report = Path(bench["params"].bench.report).read_text(encoding="utf-8")
    assert f"| {tagging['student']} |" in report and "The student (" in report
