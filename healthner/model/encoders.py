"""Build a slot's encoder and its character vocabulary, from a hub checkpoint or from a config.

`init: scratch` needs nothing outside the repository: the vocabulary comes from the training
split and the encoder gets random weights from a family config with `encoders.<slot>.config`
overrides. `init: pretrained` loads `checkpoint` (hub id or local folder) and its vocabulary.
A trained model is always rebuilt from its saved config (`encoder_from_config_dict`), so loading
a checkpoint never needs the hub, whatever the slot's init was.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    AlbertConfig,
    AutoConfig,
    AutoModel,
    BertConfig,
    ElectraConfig,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
)

from healthner.corpus.vocab import CharVocab, checkpoint_of
from healthner.sections.model import EncoderParams

FAMILY_CONFIGS: dict[str, type[PretrainedConfig]] = {
    "bert": BertConfig,
    "roberta": RobertaConfig,
    "electra": ElectraConfig,
    "albert": AlbertConfig,
}
SPECIAL_TOKENS_PER_WINDOW = 2  # [CLS] and [SEP] around each window's characters


def build_encoder(enc: EncoderParams, vocab: CharVocab, max_positions: int) -> PreTrainedModel:
    """A fresh encoder for a slot; `max_positions` counts every token of a window, specials included."""
    if enc.init == "pretrained":
        model = AutoModel.from_pretrained(checkpoint_of(enc), **enc.config)  # overrides, e.g. dropout
        _check_pretrained(model.config, vocab, max_positions, checkpoint_of(enc))
    else:
        model = AutoModel.from_config(scratch_config(enc, vocab, max_positions))
    return _without_pooler(model)


def scratch_config(enc: EncoderParams, vocab: CharVocab, max_positions: int) -> PretrainedConfig:
    """The family's config with the slot's overrides, sized for our vocabulary and windows."""
    overrides = dict(enc.config)
    needed = max_positions + _position_offset(enc.family, vocab.pad_id)
    overrides["max_position_embeddings"] = max(needed, overrides.get("max_position_embeddings", 0))
    overrides.update(vocab_size=len(vocab), pad_token_id=vocab.pad_id)
    return FAMILY_CONFIGS[enc.family](**overrides)


def encoder_from_config_dict(config: dict[str, Any]) -> PreTrainedModel:
    """Rebuild a saved encoder's architecture (random weights; the caller loads the state dict)."""
    fields = dict(config)
    model_type = fields.pop("model_type")
    return _without_pooler(AutoModel.from_config(AutoConfig.for_model(model_type, **fields)))


def _position_offset(family: str, pad_id: int) -> int:
    """RoBERTa numbers positions from pad_token_id + 1, so it needs that many extra embeddings."""
    return pad_id + 1 if family == "roberta" else 0


def _check_pretrained(config: PretrainedConfig, vocab: CharVocab, max_positions: int, name: str) -> None:
    if config.vocab_size < len(vocab):
        raise ValueError(f"{name}: vocabulary has {len(vocab)} tokens but the model embeds {config.vocab_size}")
    available = config.max_position_embeddings - _position_offset(config.model_type, config.pad_token_id or 0)
    if available < max_positions:
        raise ValueError(f"{name}: windows need {max_positions} positions, model has {available}")


def _without_pooler(model: PreTrainedModel) -> PreTrainedModel:
    """Tagging never reads the [CLS] pooler; dropping it keeps unused weights out of checkpoints."""
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model
