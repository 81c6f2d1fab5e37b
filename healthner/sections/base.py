"""What every params.yaml section shares: a frozen model that refuses unknown keys, and the value types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SLOTS = ("bert", "roberta", "electra", "albert")
Precision = Literal["auto", "float32", "bfloat16", "int8"]  # tagging weights (precision.resolve_precision)
# Whole numbers are strict: YAML's `true` is not 1, and "2" is not 2.
Count = Annotated[int, Field(strict=True, gt=0)]  # 1, 2, ...
NonNegative = Annotated[int, Field(strict=True, ge=0)]  # 0, 1, ...
Seed = Annotated[int, Field(strict=True)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when torch sees a GPU, else the CPU
Runtime = Literal["auto", "torch", "onnx"]  # what runs a member's forward pass (model/onnx_runtime.py)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
