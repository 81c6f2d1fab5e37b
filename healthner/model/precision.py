"""The precision a member runs in when tagging: float32, bfloat16 or int8, resolved per device."""

from __future__ import annotations

import typing

import torch

from healthner.model.network import NerTagger
from healthner.sections.base import Precision

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """`auto`: bfloat16 on CUDA (autocast, as training), float32 on the CPU. On the CPU bfloat16 is no
    speed path: without AVX-512 BF16 or AMX it is emulated, slower than float32, and where it is native
    it is no faster than ONNX Runtime float32 while its rounding changes some tags (docs/speed.md);
    float32 gives evaluate's own tags. float32, bfloat16 and int8 (CPU only) are taken as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


def with_precision(model: NerTagger, precision: str, device: torch.device) -> NerTagger:
    """The model's weights in `precision` for inference. On CUDA bfloat16 runs under autocast
    (SlotPredictor._autocast) and the weights stay float32; emissions always come out float32."""
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError("int8 (dynamic quantisation) runs on the CPU only")
        return quantized(model)
    if precision == "bfloat16" and device.type == "cpu":
        return model.to(torch.bfloat16)
    return model


def quantized(model: NerTagger) -> NerTagger:
    """Dynamic int8 quantisation of the Linear and LSTM layers (activations stay float): inference only."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch marks its quantised tensor constructors deprecated; still supported
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8)
