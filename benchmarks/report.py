"""BENCHMARKS.md from the JSON that `benchmarks.bench.run_benchmarks` writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

WHAT = {
    "shipped": "what `healthner tag` runs on a large input: the shipped model in tag.workers processes, each "
               "tagging its share of the texts with its share of the cores (nightly/pool.py)",
    "student": "the student stage's best seed (student.output_dir/best) as `healthner tag` runs it, like the shipped "
               "model",
    "stack": "full stack, members' forward passes in this runtime and precision: members' CRF marginals and Viterbi "
             "paths, combiner, entities (Tagger.tag)",
    "floor": "the configured stack's forward passes alone: character features once, every member's encoder + "
             "BiLSTM; no CRF, forest or decoding (a bound on any stack of these members)",
    "base": "one base model: Viterbi tags (SlotPredictor.decode)",
    "marginals": "one base model: CRF marginals (SlotPredictor.marginals)",
    "naive": "peer way: transformers token-classification pipeline, one sentence per call",
}


OPERATOR_SHARE = 0.02  # operator types below this share of their graph's time are left out of the table


def cell(figure: dict, spec: str = ",.0f") -> str:
    """median (min - max) of a figure."""
    return f"{figure['median']:{spec}} ({figure['min']:{spec}} – {figure['max']:{spec}})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def met(goal: dict) -> str:
    return "met" if goal["met"] else "**not met**"


def machine(result: dict) -> list[str]:
    rows = [(key.replace("_", " "), f"{value:.1f}" if isinstance(value, float) else value)
            for key, value in result["machine"].items()]
    return ["## Machine", "", *table(("fact", "value"), rows)]


def versus(tagging: dict, row: dict) -> str:
    """The stack against the fastest peer; a base model against the peer on its own encoder."""
    if row["kind"] == "shipped":
        return f"{min(tagging['shipped_vs_naive'].values()):.1f}x the fastest naive"
    if row["kind"] == "student":
        return f"{min(tagging['student_vs_naive'].values()):.1f}x the fastest naive"
    if row["kind"] == "stack":
        return f"{min(tagging['stack_vs_naive'][row['slot']].values()):.1f}x the fastest naive"
    if row["kind"] == "floor":
        return f"{tagging['floor_vs_naive']:.1f}x the fastest naive"
    if row["kind"] == "base":
        return f"{tagging['base_vs_naive'][row['slot']]:.1f}x"
    return ""


def tagging(result: dict) -> list[str]:
    tag, texts = result["tagging"], result["texts"]
    rows = [(name, WHAT[row["kind"]], cell(row["chars_per_s"]), versus(tag, row)) for name, row in tag["rows"].items()]
    goal = result["goals"]["speedup"]
    tokens = ", ".join(f"{slot} {share:.0%}" for slot, share in tag["naive_one_token_per_char"].items())
    return [
        "## Tagging throughput (characters per second)", "",
        (f"The same {texts['sentences']:,} sentences ({texts['chars']:,} characters) of `{texts['source']}` for every "
         "contender, in turns within each repeat. Ratios are of medians."), "",
        *table(("contender", "what it runs", "chars/s: median (min – max)", "vs naive"), rows),
        (f"Goal: the shipped tagger as `healthner tag` runs it ({tag['shipped']}; `tag.runtime` and `tag.precision` "
         f"here: {tag['configured']}) >= {goal['goal']:g}x the naive per-sentence "
         f"pipeline of one encoder: {goal['value']:.1f}x, {met(goal)}. In one process it runs at "
         f"{min(tag['stack_vs_naive'][tag['configured']].values()):.1f}x, its forward passes alone at "
         f"{tag['floor_vs_naive']:.1f}x that pipeline."
         + (f" The student ({tag['student']}, what would ship if the rule chose it): "
            f"{min(tag['student_vs_naive'].values()):.1f}x." if tag.get("student") else "")), "",
        "The same four encoders tagged the peer way, each member's naive pipeline in turn (no forest): "
        f"{tag['naive_members_chars_per_s']:,.0f} chars/s; the stack is "
        + ", ".join(f"{ratio:.1f}x that in {p}" for p, ratio in tag["stack_vs_naive_members"].items()) + ".", "",
        "Runtimes and precisions (`tag.runtime`: onnx runs each member's encoder + BiLSTM + emissions graph, "
        "`emissions.onnx`, under ONNX Runtime on the CPU in float32, the CRF staying in torch; `tag.precision` "
        "`auto` is bfloat16 on CUDA and float32 on the CPU, where bfloat16 changes the tags; int8 "
        "is dynamic quantisation of the Linear and LSTM weights): stack entity F1 on the dev split: "
        + ", ".join(f"{k} {v:.4f}" for k, v in tag["dev_f1"].items())
        + " (a combiner fit on dev makes these in-sample: compare them with each other, not with Table 2)."
        + "".join(f" Not run: {name} ({why})." for name, why in tag.get("skipped", {}).items()), "",
        ("The peer model is an `AutoModelForTokenClassification` from our saved encoder config with our encoder weights "
         "and a linear head of our tag count (no BiLSTM, no CRF: less work per character than ours), a "
         "`BertTokenizerFast` on the slot's vocab.txt and `aggregation_strategy=\"simple\"`, with a stride of our window "
         f"overlap for long sentences. Sentences cut into exactly one token per character: {tokens} "
         "(runs of digits or Latin letters become word pieces)."), "",
    ]


def profile(result: dict) -> list[str]:
    prof = result["profile"]
    total = max(prof["seconds"], 1e-9)
    phases = [(label, f"{seconds:.3f}", f"{seconds / total:.0%}") for label, seconds in prof["phases"].items()]
    top = [(f"`{r['function']}`", f"{r['calls']:,}", f"{r['own_s']:.3f}", f"{r['cumulative_s']:.3f}")
           for r in prof["top"]]
    return [
        "## Where the time goes", "",
        (f"One full-stack run of the tagging texts under cProfile ({prof['seconds']:.2f} s profiled; cProfile slows "
         "Python-level loops more than torch kernels, so read shares, not speeds)."), "",
        *table(("phase", "seconds", "share"), phases),
        *table(("function (by own time)", "calls", "own s", "cumulative s"), top),
        *operators(prof, result["texts"]["chars"]),
    ]


def operators(prof: dict, chars: int) -> list[str]:
    """onnxruntime's own per-operator timings of the graphs the shipped model runs (empty if none)."""
    graphs = prof.get("operators") or {}
    if not graphs:
        return []
    rows = []
    for graph, ops in graphs.items():
        total = max(sum(ops.values()), 1e-9)
        rows += [(graph, op, f"{seconds:.3f}", f"{seconds / total:.0%}", f"{seconds / chars * 1e6:.1f}")
                 for op, seconds in ops.items() if seconds / total >= OPERATOR_SHARE]
        rows.append((graph, "all operators", f"{total:.3f}", "100%", f"{total / chars * 1e6:.1f}"))
    return [
        (f"Inside the onnxruntime graphs: onnxruntime's own profiler on one run of the same texts, each graph in a "
         f"session of {prof['operator_threads']} thread(s), as one tagging process runs it; operator types under "
         f"{OPERATOR_SHARE:.0%} of their graph are left out."), "",
        *table(("graph", "operator", "seconds", "share of the graph", "µs per character"), rows),
    ]


def training(result: dict) -> list[str]:
    rows = []
    for slot, t in result["training"].items():
        rec = t["recorded"]
        recorded = f"{rec['seconds_per_epoch']:,.1f} / {rec['steps_seconds_per_epoch']:,.1f}" if rec else "none"
        rows.append((slot, cell(t["seconds_per_step"], ".3f"), cell(t["chars_per_s"]),
                     cell(t["seconds_per_epoch"], ",.1f"), cell(t["seconds_per_1000_sentences"], ",.2f"), recorded))
    first = next(iter(result["training"].values()))
    header = ("encoder", "s/step", "chars/s", "s/epoch", "s per 1,000 sentences", "recorded s/epoch (all / steps)")
    return [
        "## Training (params.yaml settings)", "",
        ("Timed optimiser steps of the real training code (`train._Trainer.step`, the configured losses) on the slot's "
         f"train windows, in a fresh process each, device {first['device']}; an epoch ({first['epoch_steps']:,} steps, "
         f"{first['train_sentences']:,} train sentences) is the mean step time times its steps. Recorded: the slot's "
         "train_summary.json (the real training run), seconds per epoch with dev scoring and saving / of the steps "
         "alone."), "",
        *table(header, rows),
    ]


def memory(result: dict) -> list[str]:
    mem = result["memory"]
    rows = [("tagging (load the ensemble, tag the texts)", cell(mem["tagging_mb"]))]
    rows += [(f"training {slot}", cell(fig)) for slot, fig in mem["training_mb"].items()]
    rows += [(f"a night, {shards} shard(s) (dag.test, all tasks in one process)", cell(fig))
             for shards, fig in mem["night_mb"].items()]
    return ["## Peak memory (RSS, MiB)", "", "Each a fresh process's own peak (getrusage ru_maxrss).", "",
            *table(("process", "MiB: median (min – max)"), rows), "", *tag_stream(mem["tag_stream"])]


def tag_stream(stream: dict) -> list[str]:
    """`healthner tag`'s peak against its input size (benchmarks/stream_memory.py)."""
    rows = [(size, f"{run['articles']:,}", f"{run['chars']:,}", f"{run['input_mb']:,.1f}", f"{run['peak_rss_mb']:,.0f}")
            for size, run in stream["runs"].items()]
    verdict = "flat" if stream["flat"] else "NOT flat"
    return [(f"`healthner tag` (one process) against its input size: the larger input's peak is {stream['ratio']:.2f}x "
             f"the smaller's, {verdict} (within {stream['tolerance']:.0%}: input and output are streamed in chunks)."), "",
            *table(("input", "articles", "characters", "input MiB", "peak RSS MiB"), rows)]


def night(result: dict) -> list[str]:
    params, goal = result["params"], result["goals"]["night"]
    rows = [(shards, cell(n["dag_seconds"], ",.1f"), cell(n["articles_per_s"], ",.1f"), cell(n["projected_seconds"]),
             cell(n["parallel_night_seconds"], ",.1f"), cell(n["parallel_projected_seconds"]))
            for shards, n in result["night"].items()]
    goal_articles = f"{goal['articles']:,}"
    return [
        "## A night", "",
        (f"The real DAG (`dag.test()`, own SQLite metadata DB) on {params['night_articles']:,} articles of about "
         f"{params['article_chars']:,} characters (test-split sentences joined), from discover to publish. Projections to "
         f"{goal_articles} articles are linear (fixed costs scaled too, so they lean high for small nights)."), "",
        *table(("shards", "DAG wall s", "articles/s", f"projected s, {goal_articles}",
                "night s, tag tasks in parallel", f"projected s, {goal_articles}, parallel"), rows),
        (f"Goal: {goal_articles} articles within {goal['goal_seconds']:,.0f} s: "
         f"projected {goal['projected_seconds']:,.0f} s "
         f"with {goal['shards']} shard(s), {goal['how']}, {met(goal)}."), "",
        ("`dag.test()` runs mapped tasks one after another in one process, so its 2-shard night shows the cost of "
         "sharding, not its gain. The parallel columns are the night as a LocalExecutor runs it: every step the "
         "DAG's tasks call (`healthner.nightly.night`) in a fresh process, the shards' tag tasks all at once, "
         "each with its share "
         "of the cores (`nightly.tag_slots`, `batch.shard_tag_params`); discover, stage, check and publish "
         "included, the scheduler's latency between tasks not."), "",
    ]


def speed_paths(result: dict) -> list[str]:
    """Each stack variant against the torch float32 stack of the same run, and its dev F1."""
    tag = result["tagging"]
    median = {name.removeprefix("stack "): row["chars_per_s"]["median"]
              for name, row in tag["rows"].items() if row["kind"] == "stack"}
    base = median.get("torch float32")
    pooled = tag["rows"][tag["shipped"]]["chars_per_s"]["median"]
    rows = [(name, f"{rate:,.0f}", f"{rate / base:.2f}x" if base else "", f"{tag['dev_f1'][name]:.4f}",
             "configured" if name == tag["configured"] else "") for name, rate in median.items()]
    return [
        "## Speed paths", "",
        ("What each way of running the members bought, full stack, same texts and run (`tag.runtime`, "
         "`tag.precision`; `tag.device` picks the GPU where torch sees one). The configured one is what "
         "`healthner tag` and the DAG use."), "",
        *table(("runtime precision", "chars/s (median)", "vs torch float32", "dev F1", ""), rows),
        (f"Processes (`tag.workers`): the configured variant as `healthner tag` runs a large input "
         f"({tag['shipped']}) tags {pooled:,.0f} chars/s, {pooled / median[tag['configured']]:.2f}x the same in one "
         "process on every core, with the same entities (tests/nightly/test_pool.py)."), "",
        ("What was measured once and kept in the onnx runtime or left out of the defaults, and why: "
         "[docs/speed.md](docs/speed.md)."), "",
    ]


def render(result: dict) -> str:
    runs = result["params"]["repeats"]
    head = [
        "# Benchmarks", "",
        (f"Written by `make bench` (`python -m benchmarks`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC for model "
         f"`{result['model_version']}`. Every figure is the median (min – max) of {runs} run(s) on this machine in one "
         f"run; the same figures as JSON: `{result['params']['json_report']}`."), "",
    ]
    sections = (machine, tagging, speed_paths, profile, training, memory, night)
    return "\n".join(head + [line for section in sections for line in section(result)])
