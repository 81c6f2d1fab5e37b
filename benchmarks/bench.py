"""make bench: tagging throughput, training time, peak memory and a night, measured side by side.

Every figure is min / median / max over `bench.repeats` runs, on this machine, in this run; the
contenders of one figure take turns within each repeat, so a slow spell hits them alike. The peer
baseline is what other projects do: a Hugging Face token-classification pipeline on the same
encoder (our trained weights, a linear head of our tag count), fed one sentence per call.
"""

from __future__ import annotations

import cProfile
import json
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import onnxruntime
import pyarrow.parquet as pq
import torch
import transformers
from tqdm import tqdm

from benchmarks.isolated import isolated, load_tagger, night_benchmark, tagging_run, training_run
from benchmarks.stream_memory import stream_memory
from healthner.config import Params
from healthner.corpus.readers import read_sentences
from healthner.ensemble.shipped import MANIFEST_FILE
from healthner.ensemble.student import BEST_DIR
from healthner.model.metrics import score
from healthner.nightly.pool import TaggerPool, closing_pool, load_tagging, tagging_processes, worker_params
from healthner.nightly.tagger import Tagger
from healthner.sections.tagging import BenchParams

TEST_SPLIT, TRAIN_SPLIT, DEV_SPLIT = "test.parquet", "train.parquet", "dev.parquet"
# (runtime, precision) the stack is timed and scored in, besides the configured one; a pair this device
# cannot run (onnx off the CPU or without graphs, int8 on CUDA) is left out and said so
BENCH_VARIANTS = (("onnx", "float32"), ("torch", "float32"), ("torch", "bfloat16"), ("torch", "int8"))
NAIVE_AGGREGATION = "simple"  # peers ask the pipeline for entities, not per-token labels
PER_THOUSAND = 1000
CPU_INFO = Path("/proc/cpuinfo")
NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # CPU flags of bfloat16 arithmetic in hardware
# Where stack tagging spends its time: (file, function) whose cumulative profile time is a phase
# (phases may nest: padding is part of the forward).
PROFILE_PHASES: dict[str, tuple[str, str]] = {
    "sentence cuts": ("windows.py", "split_sentences"),
    "character ids": ("vocab.py", "encode"),
    "encoder + BiLSTM forward (with padding)": ("predict.py", "_encode_windows"),
    "encoder + BiLSTM forward under onnxruntime": ("onnx_runtime.py", "__call__"),
    "padding windows": ("predict.py", "pad_windows"),
    "character features: LAC states": ("features.py", "states"),
    "character features: lexicon flags": ("lexicon.py", "features"),
    "CRF marginals (forward-backward)": ("crf.py", "crf_marginals"),
    "Viterbi paths (members' CRF and the stack's BIO)": ("crf.py", "crf_viterbi"),
    "stack features": ("stack.py", "build_features"),
    "random forest": ("stack.py", "tag_probabilities"),
    "BIO Viterbi (stack)": ("stack.py", "bio_viterbi_many"),
    "entities": ("tagger.py", "entities_of"),
}


def spread(values: Sequence[float]) -> dict:
    """A figure: min / median / max over the repeats, and every run."""
    values = [float(v) for v in values]
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "runs": values}


def throughput_texts(sentences: Sequence, chars: int) -> list[str]:
    """Sentences in order until `chars` characters (at least one sentence)."""
    texts, total = [], 0
    for sentence in sentences:
        if total >= chars:
            break
        texts.append(sentence.text)
        total += len(sentence.text)
    return texts


# --- the peer baseline -----------------------------------------------------------------------------


def naive_pipeline(slot_dir: Path, device: str):
    """A transformers token-classification pipeline on a trained slot's encoder, built offline: the
    saved encoder config, our encoder weights, a fresh linear head, a BertTokenizerFast on vocab.txt."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForTokenClassification, BertTokenizerFast, pipeline

    from healthner.corpus.labels import TAG_TO_ID, TAGS
    from healthner.corpus.vocab import CharVocab
    from healthner.model.encoders import SPECIAL_TOKENS_PER_WINDOW
    from healthner.model.folder import CONFIG_FILE, MODEL_FILE

    saved = json.loads((slot_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    fields = dict(saved["encoder_config"])
    fields.update(num_labels=len(TAGS), id2label=dict(enumerate(TAGS)), label2id=dict(TAG_TO_ID))
    model = AutoModelForTokenClassification.from_config(AutoConfig.for_model(fields.pop("model_type"), **fields))
    prefix = "encoder."
    saved_weights = load_file(str(slot_dir / MODEL_FILE))
    weights = {k.removeprefix(prefix): v for k, v in saved_weights.items() if k.startswith(prefix)}
    missing, unexpected = model.base_model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{slot_dir}: encoder weights do not fit the peer model: {missing=} {unexpected=}")
    tokenizer = BertTokenizerFast(vocab=CharVocab.load(slot_dir).index, do_lower_case=False,
                                  model_max_length=saved["window_chars"] + SPECIAL_TOKENS_PER_WINDOW)
    return pipeline("token-classification", model=model.eval(), tokenizer=tokenizer, device=device)


def naive_tags(pipe, text: str) -> list[str]:
    """The peer pipeline's label of every token of one text (one token per CJK character)."""
    return [token["entity"] for token in pipe(text, aggregation_strategy="none", ignore_labels=[])]


def one_token_per_char(pipe, texts: Sequence[str]) -> float:
    """Share of texts the peer tokenizer cuts into exactly one token per character."""
    special = pipe.tokenizer.num_special_tokens_to_add()
    return sum(len(pipe.tokenizer(t)["input_ids"]) - special == len(t) for t in texts) / max(len(texts), 1)


# --- tagging ---------------------------------------------------------------------------------------


Contender = tuple[str, str, Callable[[list[str]], object]]  # (kind, slot, tag function over texts)


def char_lists(texts: Sequence[str]) -> list[list[str]]:
    return [list(text) for text in texts]


def contenders(shipped: tuple[str, Tagger | TaggerPool], taggers: dict[str, Tagger], pipes: dict,
               student: tuple[str, Tagger | TaggerPool] | None = None) -> dict[str, Contender]:
    """What `healthner tag` runs (`shipped`: its name and tagger), the student the same way when one was
    trained, the full stack in one process in each runtime and precision (the configured one first),
    then per member of the configured stack: its Viterbi tags, its marginals, the peer pipeline on its encoder."""
    found: dict[str, Contender] = {shipped[0]: ("shipped", "configured", shipped[1].tag)}
    if student is not None:
        found[student[0]] = ("student", "student", student[1].tag)
    found.update({f"stack {name}": ("stack", name, tagger.tag) for name, tagger in taggers.items()})
    tagger = next(iter(taggers.values()))
    found["stack forward passes"] = ("floor", "all", lambda texts: forward_passes(tagger, texts))
    for slot, predictor in tagger.ensemble.predictors.items():

        def naive(texts: list[str], pipe=pipes[slot], stride=predictor.window_overlap) -> list:
            return [pipe(t, aggregation_strategy=NAIVE_AGGREGATION, stride=stride) for t in texts]

        found[f"{slot} decode"] = ("base", slot, lambda texts, p=predictor: p.decode(char_lists(texts)))
        found[f"{slot} marginals"] = ("marginals", slot, lambda texts, p=predictor: p.marginals(char_lists(texts)))
        found[f"{slot} naive"] = ("naive", slot, naive)
    return found


def forward_passes(tagger: Tagger, texts: list[str]) -> None:
    """Only what no stack of these members can skip: the character features (once, shared) and every
    member's encoder + BiLSTM; no CRF, forest or decoding. Its speed bounds the stack's."""
    sentences = char_lists(texts)
    for predictor in tagger.ensemble.predictors.values():
        predictor.emissions(sentences)


def tagging_benchmark(
    params: Params, shipped: tuple[str, Tagger | TaggerPool], taggers: dict[str, Tagger], texts: list[str], bar: tqdm,
    student: tuple[str, Tagger | TaggerPool] | None = None,
) -> dict:
    """chars/s of every contender on the same texts, repeats interleaved; ratios against the peers.
    `shipped`: what `healthner tag` runs; `student`: the student stage's best seed, run the same way;
    `taggers`: the stack in one process per variant (runtime and precision), the configured one first."""
    from healthner.model.devices import tag_device

    slots = list(next(iter(taggers.values())).ensemble.predictors)
    pipes = {slot: naive_pipeline(params.bench.model_dir / slot, tag_device(params.tag)) for slot in slots}
    runs = contenders(shipped, taggers, pipes, student)
    chars = sum(len(t) for t in texts)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for name, (_, _, tag) in runs.items():
        tag(texts[:1])  # first-call costs (allocator, lazy init) stay out of the figures
    for _ in range(params.bench.repeats):
        for name, (_, _, tag) in runs.items():
            bar.set_postfix_str(f"tagging: {name}")
            start = time.perf_counter()
            tag(texts)
            rates[name].append(chars / (time.perf_counter() - start))
            bar.update()
    rows = {name: {"kind": kind, "slot": slot, "chars_per_s": spread(rates[name])}
            for name, (kind, slot, _) in runs.items()}
    median = {name: row["chars_per_s"]["median"] for name, row in rows.items()}
    naive_members = 1 / sum(1 / median[f"{slot} naive"] for slot in slots)  # every member's pipeline in turn
    return {
        "rows": rows,
        "shipped": shipped[0],
        "shipped_vs_naive": {slot: median[shipped[0]] / median[f"{slot} naive"] for slot in slots},
        "student": student[0] if student else None,
        "student_vs_naive": {slot: median[student[0]] / median[f"{slot} naive"] for slot in slots} if student else {},
        "configured": next(iter(taggers)),
        "stack_vs_naive": {p: {slot: median[f"stack {p}"] / median[f"{slot} naive"] for slot in slots} for p in taggers},
        "naive_members_chars_per_s": naive_members,
        "stack_vs_naive_members": {p: median[f"stack {p}"] / naive_members for p in taggers},
        "floor_vs_naive": min(median["stack forward passes"] / median[f"{slot} naive"] for slot in slots),
        "base_vs_naive": {slot: median[f"{slot} decode"] / median[f"{slot} naive"] for slot in slots},
        "naive_one_token_per_char": {slot: one_token_per_char(pipe, texts) for slot, pipe in pipes.items()},
    }


def precision_check(params: Params, taggers: dict[str, Tagger]) -> dict[str, float]:
    """Dev-split entity F1 of the stack per variant: a faster runtime or precision is worth it only if F1 holds."""
    dev = read_sentences(params.prepare.output_dir / DEV_SPLIT)
    gold, chars = [s.tags for s in dev], [s.chars for s in dev]
    return {name: score(gold, [p.tags for p in tagger.ensemble.predict(chars)]).f1 for name, tagger in taggers.items()}


def profile_stack(tagger: Tagger, texts: list[str], rows: int) -> dict:
    """One profiled run of full-stack tagging: named phases and the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    tagger.tag(texts)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ncalls, own, cumulative, callers)
    phases = {label: sum(v[3] for (file, _, func), v in stats.items() if file.endswith(name) and func == function)
              for label, (name, function) in PROFILE_PHASES.items()}
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:rows]
    return {
        "seconds": sum(v[2] for v in stats.values()),
        "phases": phases,
        "top": [{"function": f"{Path(file).name}:{line}({func})", "calls": v[1], "own_s": v[2], "cumulative_s": v[3]}
                for (file, line, func), v in top],
    }


def operator_profile(tagger: Tagger, model_dir: Path, texts: list[str], threads: int, folder: Path) -> dict:
    """Where the onnxruntime graphs spend their time, per operator type: one run of `tagger.tag(texts)`
    with every graph it runs (each member's emissions graph, LAC's) in a profiling session of `threads`
    threads, onnxruntime's own per-node timings summed. LAC's graph counts once per featurizer that runs it
    (members with different feature specs each run their own). Empty when nothing runs under onnxruntime."""
    from healthner.model.features import LacStates
    from healthner.model.onnx_runtime import ONNX_FILE, OnnxEmissions

    folder.mkdir(parents=True, exist_ok=True)
    runners = {slot: p.runner for slot, p in tagger.ensemble.predictors.items() if p.runner is not None}
    featurizers = {id(p.featurizer): p.featurizer for p in tagger.ensemble.predictors.values()
                   if p.featurizer is not None and p.featurizer.lac is not None}
    sessions: dict[str, list] = {}
    lacs = {key: f.lac for key, f in featurizers.items()}
    try:
        for slot, runner in runners.items():
            profiled = OnnxEmissions(model_dir / slot / ONNX_FILE, threads, str(folder / slot))
            tagger.ensemble.predictors[slot].runner = profiled
            sessions[f"{slot} emissions"] = [profiled.session]
        for featurizer in featurizers.values():
            featurizer.lac = LacStates(threads, str(folder / "lac"))
            sessions.setdefault("LAC states", []).append(featurizer.lac.session)
        tagger.tag(texts)
    finally:
        for slot, runner in runners.items():
            tagger.ensemble.predictors[slot].runner = runner
        for key, featurizer in featurizers.items():
            featurizer.lac = lacs[key]
    return {graph: operator_seconds([Path(s.end_profiling()) for s in runs]) for graph, runs in sessions.items()}


def operator_seconds(traces: Sequence[Path]) -> dict[str, float]:
    """Seconds per operator type over onnxruntime profiles (their kernel-time events), largest first."""
    totals: dict[str, float] = {}
    for trace in traces:
        for event in json.loads(trace.read_text(encoding="utf-8")):
            if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
                op = event["args"]["op_name"]
                totals[op] = totals.get(op, 0.0) + event["dur"] / 1e6
    return dict(sorted(totals.items(), key=lambda kv: kv[1], reverse=True))


# --- training --------------------------------------------------------------------------------------


def recorded_training(slot_dir: Path, sentences: int) -> dict | None:
    """The slot's own train_summary.json (the real run): seconds per epoch with and without dev scoring."""
    from healthner.model.train import SUMMARY_FILE

    path = slot_dir / SUMMARY_FILE
    if not path.is_file():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    steps_epoch = summary["train_chars_per_epoch"] / max(summary["chars_per_second"], 1e-9)
    return {
        "seconds_per_epoch": summary["seconds"] / max(summary["epochs_run"], 1),
        "steps_seconds_per_epoch": steps_epoch,
        "seconds_per_1000_sentences": steps_epoch / sentences * PER_THOUSAND,
        "chars_per_s": summary["chars_per_second"], "epochs_run": summary["epochs_run"], "device": summary["device"],
    }


def training_benchmark(params: Params, bar: tqdm) -> dict:
    """Per encoder: timed optimiser steps (fresh process each); the batches are the first of a shuffled
    epoch, so mean step time x steps per epoch estimates the epoch without bias."""
    sentences = pq.ParquetFile(params.prepare.output_dir / TRAIN_SPLIT).metadata.num_rows
    found = {}
    for slot in params.encoders:
        runs = []
        for _ in range(params.bench.repeats):
            bar.set_postfix_str(f"training: {slot}")
            runs.append(isolated(training_run, params, slot))
            bar.update()
        epoch = [r["seconds_per_step"] * r["epoch_steps"] for r in runs]
        found[slot] = {
            "seconds_per_step": spread([r["seconds_per_step"] for r in runs]),
            "chars_per_s": spread([r["chars_per_s"] for r in runs]),
            "seconds_per_epoch": spread(epoch),
            "seconds_per_1000_sentences": spread([s / sentences * PER_THOUSAND for s in epoch]),
            "peak_rss_mb": spread([r["peak_rss_mb"] for r in runs]),
            "epoch_steps": runs[0]["epoch_steps"], "train_sentences": sentences, "device": runs[0]["device"],
            "recorded": recorded_training(params.bench.model_dir / slot, sentences),
        }
    return found


# --- the run ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    if CPU_INFO.is_file():
        for line in CPU_INFO.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_runs_bfloat16(cpuinfo: Path = CPU_INFO) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX flags), a fact of the machine
    table: oneDNN's own check (torch.ops.mkldnn._is_mkldnn_bf16_supported) says yes for any AVX-512 CPU,
    where bfloat16 is emulated and slower than float32."""
    if not cpuinfo.is_file():
        return False
    flags = {flag for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.startswith("flags") for flag in line.partition(":")[2].split()}
    return bool(flags & NATIVE_BFLOAT16_FLAGS)


def machine_facts() -> dict:
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "load_average_at_start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onnxruntime": onnxruntime.__version__, "cpu_runs_bfloat16": cpu_runs_bfloat16(),
    }


def night_figures(raw: dict[int, dict[str, list[float]]], bench: BenchParams) -> dict[str, dict]:
    """Per shard count: dag.test() wall time, articles/s and the projection to goal_night_articles; the same
    night with the shards' tag tasks in parallel processes, and its projection."""
    scale = bench.goal_night_articles / bench.night_articles
    return {str(shards): {
        "dag_seconds": spread(runs["dag_seconds"]),
        "articles_per_s": spread([bench.night_articles / s for s in runs["dag_seconds"]]),
        "projected_seconds": spread([s * scale for s in runs["dag_seconds"]]),
        "parallel_night_seconds": spread(runs["parallel_night_seconds"]),
        "parallel_projected_seconds": spread([s * scale for s in runs["parallel_night_seconds"]]),
    } for shards, runs in raw.items()}


def goals(result: dict, bench: BenchParams) -> dict:
    tagging = result["tagging"]
    speedup = min(tagging["shipped_vs_naive"].values())  # against the fastest peer pipeline
    projected = {(shards, how): n[key]["median"] for shards, n in result["night"].items()
                 for how, key in (("dag.test", "projected_seconds"), ("parallel tasks", "parallel_projected_seconds"))}
    shards, how = min(projected, key=projected.get)
    seconds = projected[(shards, how)]
    return {
        "speedup": {"goal": bench.goal_speedup, "value": speedup, "met": speedup >= bench.goal_speedup},
        "night": {"goal_seconds": bench.goal_night_seconds, "articles": bench.goal_night_articles, "shards": shards,
                  "how": how, "projected_seconds": seconds, "met": seconds <= bench.goal_night_seconds},
    }


def variant_of(tagger: Tagger) -> str:
    """"runtime precision" a loaded stack runs in (tag.runtime and tag.precision resolved)."""
    predictors = list(tagger.ensemble.predictors.values())
    runtime = "onnx" if any(p.runner is not None for p in predictors) else "torch"
    return f"{runtime} {predictors[0].precision}"


def stack_variants(params: Params) -> tuple[dict[str, Tagger], dict[str, str]]:
    """The benchmarked stack as configured (resolved), then in every other BENCH_VARIANTS pair this
    device runs; and why each of the others was left out."""
    configured = load_tagger(params)
    taggers, skipped = {variant_of(configured): configured}, {}
    for runtime, precision in BENCH_VARIANTS:
        name = f"{runtime} {precision}"
        if name in taggers:
            continue
        try:
            taggers[name] = load_tagger(params, precision=precision, runtime=runtime)
        except (ValueError, FileNotFoundError) as reason:
            skipped[name] = str(reason)
    return taggers, skipped


def shipped_name(tagging: Tagger | TaggerPool, what: str = "shipped") -> str:
    """The contender name of what `healthner tag` runs on a large input: how many processes tag."""
    processes = tagging.processes if isinstance(tagging, TaggerPool) else 1
    return f"{what}, {processes} process{'es' if processes > 1 else ''}"


def trained_student(params: Params) -> Tagger | TaggerPool | None:
    """The student stage's best seed as `healthner tag` loads it (student.output_dir/best), if one was trained."""
    folder = params.student.output_dir / BEST_DIR
    return load_tagging(folder, params.tag) if (folder / MANIFEST_FILE).is_file() else None


def run_benchmarks(params: Params) -> dict:
    """Measure everything, write bench.report (Markdown) and bench.json_report; returns the JSON."""
    from benchmarks.report import render

    bench = params.bench
    sentences = read_sentences(params.prepare.output_dir / TEST_SPLIT)
    texts = throughput_texts(sentences, bench.throughput_chars)
    machine = machine_facts()  # before anything here loads the machine
    taggers, skipped = stack_variants(params)
    tagger = next(iter(taggers.values()))
    members = len(tagger.ensemble.predictors)
    nights = (bench.night_repeats or bench.repeats) * len(bench.night_shards) * 2
    total = bench.repeats * (len(taggers) + 2 + 3 * members + 1 + len(params.encoders)) + nights + 1
    shipped = load_tagging(params.bench.model_dir, params.tag)  # as `healthner tag` on a large input (tag.workers)
    student = trained_student(params)
    total += bench.repeats if student is not None else 0
    student_run = (shipped_name(student, "student"), student) if student is not None else None
    with (tqdm(total=total, desc="bench", unit="run") as bar, closing_pool(shipped, own=True),
          closing_pool(student, own=True)):
        tagging = tagging_benchmark(params, (shipped_name(shipped), shipped), taggers, texts, bar, student_run)
        bar.set_postfix_str("dev F1 per variant")
        tagging["dev_f1"], tagging["skipped"] = precision_check(params, taggers), skipped
        bar.set_postfix_str("profile")
        profile = profile_stack(tagger, texts, bench.profile_rows)
        threads = worker_params(params.tag, tagging_processes(params.tag, "cpu")).torch_threads
        profile["operators"] = operator_profile(tagger, bench.model_dir, texts, threads,
                                               bench.json_report.parent / "onnx_profiles")
        profile["operator_threads"] = threads
        tag_memory = []
        for _ in range(bench.repeats):
            bar.set_postfix_str("tagging memory")
            tag_memory.append(isolated(tagging_run, params, texts)["peak_rss_mb"])
            bar.update()
        bar.set_postfix_str("healthner tag memory, 1x and more")
        tag_stream = stream_memory(params, [s.text for s in sentences])
        bar.update()
        training = training_benchmark(params, bar)
        raw_nights = night_benchmark(params, [s.text for s in sentences], bar)
    result = {
        "machine": machine, "model_version": tagger.model_version, "params": bench.model_dump(mode="json"),
        "texts": {"sentences": len(texts), "chars": sum(len(t) for t in texts), "source": TEST_SPLIT},
        "tagging": tagging, "profile": profile, "training": training,
        "memory": {"tagging_mb": spread(tag_memory),
                   "training_mb": {slot: t["peak_rss_mb"] for slot, t in training.items()},
                   "night_mb": {str(n): spread(r["peak_rss_mb"]) for n, r in raw_nights.items()},
                   "tag_stream": tag_stream},
        "night": night_figures(raw_nights, bench),
    }
    result["goals"] = goals(result, bench)
    result["speedup_vs_naive"] = result["goals"]["speedup"]["value"]  # the shipped tagger over one encoder's naive pipeline
    result["night_10k_seconds"] = result["goals"]["night"]["projected_seconds"]  # stage and publish included
    for path, text in ((bench.json_report, json.dumps(result, indent=2) + "\n"), (bench.report, render(result))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return result


def summary(result: dict, bench: BenchParams) -> str:
    """One line for the CLI: the two goals and where the reports went."""
    speed, night = result["goals"]["speedup"], result["goals"]["night"]
    tagging = result["tagging"]
    stack = tagging["rows"][f"stack {tagging['configured']}"]["chars_per_s"]["median"]
    return (
        f"stack ({tagging['configured']}) tags {stack:,.0f} chars/s, {speed['value']:.1f}x the fastest naive pipeline "
        f"(goal {speed['goal']:g}x: {'met' if speed['met'] else 'NOT met'}); {night['articles']:,} articles projected "
        f"{night['projected_seconds']:,.0f}s with {night['shards']} shard(s), {night['how']} "
        f"(goal {night['goal_seconds']:,.0f}s: "
        f"{'met' if night['met'] else 'NOT met'}) -> {bench.report}, {bench.json_report}"
    )
