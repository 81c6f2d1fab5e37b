"""Where inference runs: `tag.device` resolved, host-to-device copies that pay for themselves, and the
onnxruntime CPU sessions (members' emissions graphs, LAC's) with the options shard processes need."""

from __future__ import annotations

from pathlib import Path

import torch

from healthner.config import TagParams


def resolve_device(device: str) -> torch.device:
    """auto: CUDA when torch sees a GPU, else the CPU; cpu and cuda are taken as they are."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def tag_device(tag: TagParams) -> str:
    """params.tag.device resolved, as a string (what SlotPredictor.load and Ensemble.load take)."""
    return str(resolve_device(tag.device))


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`. Towards a GPU the host copy is pinned first, so the copy is a DMA that
    can overlap the previous batch's kernels; on the CPU pinning would only cost a copy."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def cpu_session(model: Path | bytes, threads: int, profile_prefix: str | None = None):
    """An onnxruntime CPU session of `model` (a path or the graph's bytes) on `threads` intra-op threads;
    with `profile_prefix`, onnxruntime's own per-node profiler is on (session.end_profiling() writes it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between ops: parallel shard processes share the cores (spinning cost up to 1.7x there)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])
