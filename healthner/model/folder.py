"""A trained slot's folder: what `save_model` writes, and the bytes a load reads.

A member folder holds `model.safetensors` (weights), `config.json` (encoder config, architecture,
windows, features), `labels.json`, `vocab.txt`, the lexicon term list it was trained with
(`lexicon.tsv`, when it uses lexicon flags) and, once exported, its emissions graph
(`emissions.onnx`). Loading never unpickles.

A load reads each of those files once into memory (`read_member`) and builds the predictor from
those bytes alone, never from the disk again: whoever hashed the bytes (the shipped ensemble's
model_version) vouches for exactly what runs, even if the folder is replaced mid-load.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors.torch import save_file

from healthner.corpus.labels import TAGS
from healthner.corpus.vocab import VOCAB_FILE, CharVocab
from healthner.io import write_json
from healthner.model.features import FeatureSpec
from healthner.model.network import NerTagger
from healthner.sections.model import EncoderParams, ModelParams

MODEL_FILE, CONFIG_FILE, LABELS_FILE, LEXICON_FILE = "model.safetensors", "config.json", "labels.json", "lexicon.tsv"
ONNX_FILE = "emissions.onnx"  # the member's emissions graph (onnx_runtime.export_member)
MEMBER_FILES = (CONFIG_FILE, LABELS_FILE, LEXICON_FILE, MODEL_FILE, VOCAB_FILE, ONNX_FILE)  # all a load may read
FORMAT_VERSION = 1


@dataclass(frozen=True)
class MemberFiles:
    """The files of one member folder as read once (name -> bytes; absent files are missing)."""

    folder: Path  # where they were read from: named in errors only, never read again
    data: Mapping[str, bytes]

    def get(self, name: str) -> bytes | None:
        return self.data.get(name)

    def require(self, name: str) -> bytes:
        if name not in self.data:
            raise FileNotFoundError(f"{self.folder / name}: not found")
        return self.data[name]

    def text(self, name: str) -> str:
        return self.require(name).decode("utf-8")


def read_member(folder: Path | str) -> MemberFiles:
    """Every file of MEMBER_FILES present in `folder`, each read once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: model folder not found")
    return MemberFiles(folder, {name: (folder / name).read_bytes() for name in MEMBER_FILES if (folder / name).is_file()})


@dataclass(frozen=True)
class Architecture:
    """NerTagger's constructor arguments other than the encoder."""

    num_tags: int
    use_bilstm: bool
    lstm_hidden: int
    lstm_layers: int
    dropout: float
    use_crf: bool
    char_features: int = 0
    bigram_buckets: int = 0
    bigram_dim: int = 0
    lac_finetune: bool = False
    lac_embedding: bool = False

    @classmethod
    def from_params(cls, model: ModelParams) -> Architecture:
        return cls(
            len(TAGS), model.use_bilstm, model.lstm_hidden, model.lstm_layers, model.dropout, model.use_crf,
            feature_spec(model).width, model.bigram_buckets, model.bigram_dim, model.lac == "finetune",
            model.lac == "embedding",
        )


def feature_spec(model: ModelParams) -> FeatureSpec:
    """The features computed outside the model: LAC only when frozen (fine-tuned, it is part of the model)."""
    return FeatureSpec(lexicon=model.use_lexicon, lac=model.lac == "frozen")


def save_model(
    directory: Path,
    model: NerTagger,
    vocab: CharVocab,
    arch: Architecture,
    encoder: EncoderParams,
    window_chars: int,
    window_overlap: int,
    features: FeatureSpec = FeatureSpec(),
    lexicon_path: Path | None = None,
) -> Path:
    """Everything needed to rebuild the tagger offline; no pickles. A model with lexicon features
    keeps its own copy of the term list it was trained with (`lexicon_path`), written on every
    save so that retraining into an existing folder never leaves an older list behind."""
    directory.mkdir(parents=True, exist_ok=True)
    if features.lexicon:
        if lexicon_path is None:
            raise ValueError("a model with lexicon features needs the lexicon's term list")
        shutil.copyfile(lexicon_path, directory / LEXICON_FILE)
    else:
        (directory / LEXICON_FILE).unlink(missing_ok=True)
    (directory / ONNX_FILE).unlink(missing_ok=True)  # exported from the old weights (onnx_runtime.export_member)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / MODEL_FILE))
    config = {
        "format_version": FORMAT_VERSION,
        "family": encoder.family,
        "init": encoder.init,
        "checkpoint": encoder.checkpoint,  # provenance only: loading never reads it
        "encoder_config": model.encoder.config.to_dict(),
        "model": asdict(arch),
        "features": features.to_dict(),
        "window_chars": window_chars,
        "window_overlap": window_overlap,
        "tags": list(TAGS),
    }
    write_json(directory / CONFIG_FILE, config, default=str)
    write_json(directory / LABELS_FILE, list(TAGS))
    vocab.save(directory)
    return directory
