"""A member's emissions graph under ONNX Runtime: the CPU alternative to torch for tagging.

The graph is encoder + character features input + BiLSTM + linear emissions (NerTagger.forward);
the CRF's forward-backward and Viterbi stay in torch (crf.py), so marginals and paths come from the
same code whichever runtime made the emissions. The graph lives beside the weights in the member
folder (`emissions.onnx`), so a shipped ensemble folder stays self-contained and its model_version
covers it. The graph records the sha256 of the weights it was exported from; a graph that no longer
matches them (the member was retrained after the export) is never run. That stamp only catches a
stale export: what vouches for the graph's content is the shipped model_version, which hashes the
graph's bytes, and the session is built from those same bytes (folder.MemberFiles).
"""

from __future__ import annotations

import copy
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from healthner.model.folder import MODEL_FILE, ONNX_FILE, MemberFiles, read_member
from healthner.model.network import NerTagger
from healthner.model.recurrent import MaskedBiLSTM, bidirectional_layer, reversal_index
from healthner.model.sessions import cpu_session

OPSET = 17  # the TorchScript exporter's tested opsets include it; onnxruntime runs it everywhere
WEIGHTS_KEY = "weights_sha256"  # ONNX metadata: which model.safetensors the graph was exported from
EXPORT_CHARS = (7, 4)  # characters per window of the traced batch: two lengths, so padding is traced
AXES = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
        "features": {0: "batch", 1: "chars"}, "emissions": {0: "batch", 1: "chars"}}
# On the CPU ONNX Runtime: at one thread it runs a member's forward about as fast as torch float32, and on busy
# cores with more threads it keeps its speed where torch's OpenMP collapses (make bench measures both).
AUTO_RUNTIME_ON_CPU = "onnx"


def weights_digest(weights: bytes) -> str:
    return hashlib.sha256(weights).hexdigest()


def export_inputs(model: NerTagger) -> tuple[torch.Tensor, ...]:
    """A small right-padded batch of windows ([CLS] chars [SEP]) and, if the model takes them, features."""
    longest = max(EXPORT_CHARS) + 2
    vocab = model.encoder.config.vocab_size
    input_ids = (torch.arange(len(EXPORT_CHARS) * longest).reshape(len(EXPORT_CHARS), longest) % vocab).long()
    attention_mask = torch.zeros_like(input_ids)
    for row, chars in enumerate(EXPORT_CHARS):
        attention_mask[row, : chars + 2] = 1
    if not model.char_features:
        return input_ids, attention_mask
    return input_ids, attention_mask, torch.rand(len(EXPORT_CHARS), longest - 2, model.char_features)


class _BidirectionalLstm(torch.autograd.Function):
    """One MaskedBiLSTM layer as ONE bidirectional ONNX LSTM node fed the rows' lengths
    (`sequence_lens`): onnxruntime then runs each row's backward pass from its own last character,
    which the traced graph does by reversing every row before and after a second LSTM node
    (GatherElements, Where, Expand and two more Transposes per layer). Tracing passes torch's own
    output of the layer (`traced`), so shapes and values are torch's; the node never reads it, and
    the exporter drops the ops that made it."""

    @staticmethod
    def forward(ctx, x, lengths, weights, recurrent, bias, traced):  # all of them: the node's inputs
        return traced.clone()

    @staticmethod
    def symbolic(g, x, lengths, weights, recurrent, bias, traced):
        hidden = recurrent.type().sizes()[-1]
        steps = g.op("Cast", lengths, to_i=torch.onnx.TensorProtoDataType.INT32)  # sequence_lens is int32
        time_major = g.op("Transpose", x, perm_i=[1, 0, 2])
        states, _, _ = g.op("LSTM", time_major, weights, recurrent, bias, steps, direction_s="bidirectional",
                            hidden_size_i=hidden, outputs=3)
        batch_major = g.op("Transpose", states, perm_i=[2, 0, 1, 3])  # (time, 2, batch, hidden) -> (batch, time, 2, hidden)
        return g.op("Reshape", batch_major, g.op("Constant", value_t=torch.tensor([0, 0, -1])))


def _onnx_lstm_gates(blocks: torch.Tensor) -> torch.Tensor:
    """Rows in torch's i, f, g, o gate order -> ONNX's i, o, f, c."""
    i, f, g, o = blocks.chunk(4)
    return torch.cat([i, o, f, g])


class _ExportedBiLstm(torch.nn.Module):
    """A MaskedBiLSTM that exports each layer as one bidirectional LSTM node (same outputs)."""

    def __init__(self, lstm: MaskedBiLSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        index = reversal_index(lengths, x.shape[1])
        for fwd, bwd in zip(self.lstm.forward_layers, self.lstm.backward_layers, strict=True):
            pair = (fwd, bwd)
            weights = torch.stack([_onnx_lstm_gates(d.weight_ih_l0) for d in pair])
            recurrent = torch.stack([_onnx_lstm_gates(d.weight_hh_l0) for d in pair])
            bias = torch.stack([torch.cat([_onnx_lstm_gates(d.bias_ih_l0), _onnx_lstm_gates(d.bias_hh_l0)]) for d in pair])
            x = _BidirectionalLstm.apply(x, lengths, weights, recurrent, bias, bidirectional_layer(fwd, bwd, x, index))
        return x


def export_view(model: NerTagger) -> NerTagger:
    """`model` as exported: the same modules, its BiLSTM as bidirectional ONNX LSTM nodes."""
    if not isinstance(model.lstm, MaskedBiLSTM):
        return model
    view = copy.copy(model)  # shares every parameter; only the view's lstm attribute differs
    view._modules = dict(model._modules, lstm=_ExportedBiLstm(model.lstm))
    return view


def export_emissions(model: NerTagger, weights_sha256: str) -> bytes:
    """The model's emissions graph (float32, CPU, dynamic batch and window length) as ONNX bytes.

    The TorchScript exporter (dynamo=False): the dynamo one needs onnxscript, which we do not ship, and
    tracing is exact here because NerTagger.forward has no data-dependent Python branches."""
    import onnx

    model = export_view(model.float().cpu().eval())
    inputs = export_inputs(model)
    names = list(AXES)[: len(inputs)]
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's shape warnings and the legacy exporter's notice
        torch.onnx.export(model, inputs, buffer, dynamo=False, input_names=names, output_names=["emissions"],
                          opset_version=OPSET, dynamic_axes={k: AXES[k] for k in [*names, "emissions"]})
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, {WEIGHTS_KEY: weights_sha256})
    return graph.SerializeToString()


def export_member(model_dir: Path | str, model: NerTagger) -> Path:
    """Export a trained member folder's emissions graph to `<model_dir>/emissions.onnx` (replacing any);
    `model`: the folder's own weights, loaded (SlotPredictor.load(model_dir).model; predict imports this
    module, not the reverse). Run it before `healthner stack`: model_version is a digest of the files."""
    model_dir = Path(model_dir)
    path = model_dir / ONNX_FILE
    path.write_bytes(export_emissions(model, weights_digest((model_dir / MODEL_FILE).read_bytes())))
    return path


class OnnxEmissions:
    """One member's emissions graph (its bytes, or a path) in an onnxruntime CPU session; called like
    NerTagger.forward on numpy arrays. `threads`: intra-op threads (one tagging process's share of the
    cores). The bytes are not kept: the session holds its own copy of the graph."""

    def __init__(self, graph: Path | bytes, threads: int, profile_prefix: str | None = None):
        self.session = cpu_session(graph, threads, profile_prefix)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        """(batch, tokens) ids and mask, (batch, tokens - 2, width) features -> (batch, tokens - 2, tags) float32."""
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        if "features" in self.input_names:
            if features is None:
                raise ValueError("this member's graph needs its character features")
            feeds["features"] = features.astype(np.float32, copy=False)
        (emissions,) = self.session.run(["emissions"], feeds)
        return emissions


def graph_is_current(member: MemberFiles | Path) -> bool:
    """Whether the member's files (or folder) hold an emissions graph exported from their weights."""
    import onnx

    files = member if isinstance(member, MemberFiles) else read_member(member)
    graph, weights = files.get(ONNX_FILE), files.get(MODEL_FILE)
    if graph is None or weights is None:
        return False
    props = {p.key: p.value for p in onnx.load_from_string(graph).metadata_props}
    return props.get(WEIGHTS_KEY) == weights_digest(weights)


def resolve_runtime(runtime: str, device: str | torch.device, precision: str, files: MemberFiles) -> str:
    """torch or onnx. onnx runs float32 on the CPU only; auto picks AUTO_RUNTIME_ON_CPU there when the
    folder holds a current graph, and torch everywhere else (CUDA, bfloat16, int8, no graph)."""
    if runtime not in ("auto", "torch", "onnx"):
        raise ValueError(f"runtime {runtime!r}: expected auto, torch or onnx")
    if runtime == "torch":
        return "torch"
    onnx_fits = torch.device(device).type == "cpu" and precision == "float32"
    if runtime == "onnx":
        if not onnx_fits:
            raise ValueError(f"the onnx runtime runs float32 on the CPU, not {precision} on {device}")
        if not graph_is_current(files):
            raise FileNotFoundError(f"{files.folder}: no emissions graph of the current weights; "
                                    f"run `healthner export-onnx {files.folder}`")
        return "onnx"
    return AUTO_RUNTIME_ON_CPU if onnx_fits and graph_is_current(files) else "torch"


def onnx_runner(files: MemberFiles, runtime: str, device: str | torch.device, precision: str) -> OnnxEmissions | None:
    """The member's ONNX session, built from the graph's bytes in `files`, when `runtime` resolves to onnx,
    else None (torch runs it); threads as torch's."""
    if resolve_runtime(runtime, device, precision, files) != "onnx":
        return None
    return OnnxEmissions(files.require(ONNX_FILE), torch.get_num_threads())
