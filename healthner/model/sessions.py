"""onnxruntime CPU sessions (members' emissions graphs, LAC's) with the options shard processes need."""

from __future__ import annotations

from pathlib import Path


def cpu_session(model: Path | bytes, threads: int, profile_prefix: str | None = None):
    """An onnxruntime CPU session of `model` (a path or the graph's bytes) on `threads` intra-op threads;
    with `profile_prefix`, onnxruntime's own per-node profiler is on (session.end_profiling() writes it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between ops: parallel shard processes share the cores, and a spinning thread takes its
    # core from another process's work
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])
