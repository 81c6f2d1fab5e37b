"""Where inference runs: `tag.device` resolved, and host-to-device copies that pay for themselves
(onnxruntime's CPU sessions are built in sessions.py)."""

from __future__ import annotations

import torch

from healthner.sections.tagging import TagParams


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
