"""A trained slot on disk (safetensors + JSON + vocab.txt) and the predictor that runs it.

Any sentence length works: each sentence is cut into the model's windows, the windows of all
sentences are sorted by length and batched, the per-window emissions are merged back per sentence
(windows.merge_windows), and the CRF then runs over the whole sentence, so marginals and Viterbi
paths are sentence-level and valid BIO across window seams.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from healthner.config import EncoderParams, ModelParams, Precision
from healthner.corpus.labels import TAGS
from healthner.corpus.lexicon import Lexicon
from healthner.corpus.vocab import CharVocab
from healthner.corpus.windows import make_windows, merge_windows
from healthner.model.crf import CrfScores, crf_marginals, crf_viterbi
from healthner.model.devices import to_device
from healthner.model.encoders import encoder_from_config_dict
from healthner.model.features import CharFeaturizer, FeatureSpec
from healthner.model.network import NerTagger
from healthner.model.onnx_runtime import ONNX_FILE, OnnxEmissions, onnx_runner

MODEL_FILE, CONFIG_FILE, LABELS_FILE, LEXICON_FILE = "model.safetensors", "config.json", "labels.json", "lexicon.tsv"
FORMAT_VERSION = 1
DEFAULT_BATCH_CHARS = 4096  # tokens per forward batch; params.tag.batch_chars where params are at hand
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
CPU_INFO = Path("/proc/cpuinfo")
NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # CPU flags of bfloat16 arithmetic in hardware


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

    @classmethod
    def from_params(cls, model: ModelParams) -> Architecture:
        return cls(
            len(TAGS), model.use_bilstm, model.lstm_hidden, model.lstm_layers, model.dropout, model.use_crf,
            feature_spec(model).width, model.bigram_buckets, model.bigram_dim, model.lac == "finetune",
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
    _write_json(directory / CONFIG_FILE, config)
    _write_json(directory / LABELS_FILE, list(TAGS))
    vocab.save(directory)
    return directory


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")


class SlotPredictor:
    """Marginals and Viterbi tags of one trained slot for lists of character sequences."""

    def __init__(
        self,
        model: NerTagger,
        vocab: CharVocab,
        window_chars: int,
        window_overlap: int,
        device: str | torch.device = "cpu",
        batch_chars: int = DEFAULT_BATCH_CHARS,
        featurizer: CharFeaturizer | None = None,
        precision: str = "float32",
        runner: OnnxEmissions | None = None,
        forward_batch_chars: int | None = None,
    ):
        """`batch_chars`: characters per CRF batch; `forward_batch_chars` (None: batch_chars) per forward
        pass. On the CPU a smaller forward batch is faster: the BiLSTM's gate buffers stay in cache."""
        if model.char_features and (featurizer is None or featurizer.width != model.char_features):
            raise ValueError(f"this model was trained with {model.char_features} character features: pass its featurizer")
        self.model, self.vocab, self.featurizer = model, vocab, featurizer if model.char_features else None
        self.window_chars, self.window_overlap = window_chars, window_overlap
        self.device, self.batch_chars = torch.device(device), batch_chars
        self.forward_batch_chars = forward_batch_chars or batch_chars
        self.precision = precision
        self.runner = runner  # runs the emissions graph instead of self.model's forward (CPU, float32)

    @classmethod
    def load(
        cls,
        model_dir: Path | str,
        device: str = "cpu",
        batch_chars: int = DEFAULT_BATCH_CHARS,
        precision: str = "float32",
        runtime: str = "torch",
        forward_batch_chars: int | None = None,
    ) -> SlotPredictor:
        """A trained slot from its folder, run in `precision` (see `resolve_precision`); its forward
        passes under `runtime` (onnx_runtime.resolve_runtime), the CRF always in torch."""
        model_dir = Path(model_dir)
        config = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        if tuple(config["tags"]) != TAGS:
            raise ValueError(f"{model_dir}: trained on tags {config['tags']}, expected labels.TAGS")
        model = NerTagger(encoder_from_config_dict(config["encoder_config"]), **config["model"])
        model.load_state_dict(load_file(str(model_dir / MODEL_FILE)))
        model.to(device).eval()
        precision = resolve_precision(precision, device)
        model = with_precision(model, precision, torch.device(device))
        vocab = CharVocab.load(model_dir)
        featurizer = load_featurizer(model_dir, FeatureSpec(**config.get("features", {})))
        runner = onnx_runner(model_dir, runtime, device, precision)
        return cls(model, vocab, config["window_chars"], config["window_overlap"], device, batch_chars, featurizer,
                   precision, runner, forward_batch_chars)

    def marginals(self, sentences: Sequence[Sequence[str]], merged: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per sentence a float32 (n_chars, len(TAGS)) array of tag probabilities, columns in TAGS order.
        `merged`: this predictor's `emissions(sentences)` when the caller already has them."""

        def run(emissions: torch.Tensor, mask: torch.Tensor, lengths: list[int]) -> list[np.ndarray]:
            probs = self.model.marginals(emissions, mask).float().cpu().numpy()
            return [probs[k, :n] for k, n in enumerate(lengths)]

        return self._per_sentence(sentences, run, _no_marginals, merged)

    def decode(self, sentences: Sequence[Sequence[str]], merged: list[np.ndarray] | None = None) -> list[list[str]]:
        """Per sentence the best tag sequence (Viterbi with a CRF, argmax without); `merged` as in marginals."""

        def run(emissions: torch.Tensor, mask: torch.Tensor, lengths: list[int]) -> list[list[str]]:
            return [[TAGS[t] for t in path] for path in self.model.decode(emissions, mask)]

        return self._per_sentence(sentences, run, list, merged)

    def emissions(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per non-empty sentence (in input order) its (n_chars, tags) emissions, windows merged."""
        self.model.eval()
        items = [(i, start, end) for i, chars in enumerate(sentences) for start, end in self._windows(len(chars))]
        ids = [self.vocab.encode(chars)[0] for chars in sentences]
        features = self.featurizer.features(sentences) if self.featurizer else None
        per_window: dict[tuple[int, int], np.ndarray] = {}
        for batch in padded_batches(items, lambda it: it[2] - it[1] + 2, self.forward_batch_chars):
            window_features = [features[i][s:e] for i, s, e in batch] if features else None
            rows = self._encode_windows([ids[i][s:e] for i, s, e in batch], window_features)
            per_window.update(((i, s), rows[k, : e - s]) for k, (i, s, e) in enumerate(batch))
        return [
            merge_windows(len(chars), windows, [per_window[(i, s)] for s, _ in windows])
            for i, chars in enumerate(sentences)
            if (windows := self._windows(len(chars)))
        ]

    def _windows(self, length: int) -> list[tuple[int, int]]:
        return make_windows(length, self.window_chars, self.window_overlap) if length else []

    def _encode_windows(self, windows: list[list[int]], features: list[np.ndarray] | None) -> np.ndarray:
        """One forward over a batch of windows' character ids (and features); (batch, longest, tags)."""
        input_ids, attention_mask = pad_windows(windows, self.vocab)
        padded = None if features is None else pad_features(features, input_ids.shape[1] - 2)
        if self.runner is not None:
            return self.runner(input_ids.numpy(), attention_mask.numpy(), None if padded is None else padded.numpy())
        padded = None if padded is None else to_device(padded, self.device)
        with torch.inference_mode(), self._autocast():
            emissions = self.model(to_device(input_ids, self.device), to_device(attention_mask, self.device), padded)
        return emissions.float().cpu().numpy()

    def _per_sentence(
        self, sentences: Sequence[Sequence[str]], run: Callable, empty: Callable, merged: list[np.ndarray] | None
    ) -> list:
        """`run(emissions, mask, lengths)` over batches of merged sentence emissions (computed here unless
        given); results in input order, `empty()` for sentences without characters."""
        merged = self.emissions(sentences) if merged is None else merged
        (results,) = _over_padded_batches([merged], run, self.batch_chars, self.device)
        return _with_empty(results, sentences, empty)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.precision == "bfloat16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """`auto`: bfloat16 on CUDA (autocast, as training), float32 on the CPU. On the CPU bfloat16 is no
    speed path: emulated without AVX-512 BF16/AMX it is about 3x slower, and where it is native (an AMD
    EPYC here) it was no faster than ONNX Runtime float32 and moved the shipped member's dev F1 by 0.1
    point (make bench); float32 gives evaluate's own tags. float32, bfloat16 and int8 (CPU only) are taken
    as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


def cpu_runs_bfloat16(cpuinfo: Path = CPU_INFO) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX flags). oneDNN's own check
    (torch.ops.mkldnn._is_mkldnn_bf16_supported) says yes for any AVX-512 CPU, where bfloat16 is
    emulated: about 3x slower than float32 for a member's forward on this repo's CPU (BENCHMARKS.md)."""
    if not cpuinfo.is_file():
        return False
    flags = {flag for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.startswith("flags") for flag in line.partition(":")[2].split()}
    return bool(flags & NATIVE_BFLOAT16_FLAGS)


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


def _no_marginals() -> np.ndarray:
    return np.zeros((0, len(TAGS)), np.float32)


def _with_empty(results: list, sentences: Sequence[Sequence[str]], empty: Callable) -> list:
    """Results of the non-empty sentences (in order) spread back over all sentences, `empty()` between."""
    filled = iter(results)
    return [next(filled) if len(chars) else empty() for chars in sentences]


def joint_outputs(
    predictors: Sequence[SlotPredictor], sentences: Sequence[Sequence[str]], paths: bool = False
) -> tuple[list[list[np.ndarray]], list[list[list[str]]] | None]:
    """Each predictor's `marginals(sentences)` and, with `paths`, its `decode(sentences)`, with ONE
    forward-backward (and one Viterbi) over all members' emissions.

    The CRF's time loop is a Python loop of small tensor ops; running the members side by side in the
    batch dimension, each block of rows scored by its own member's transitions (crf module), pays
    that loop once instead of once per member. Falls back to one call per member when any of them has
    no CRF.
    """
    merged = [p.emissions(sentences) for p in predictors]  # per member: the non-empty sentences, in order
    if any(p.model.crf is None for p in predictors):
        pairs = list(zip(predictors, merged, strict=True))
        return [p.marginals(sentences, m) for p, m in pairs], [p.decode(sentences, m) for p, m in pairs] if paths else None
    with torch.inference_mode():
        members = [CrfScores.of(p.model.crf) for p in predictors]
        scores = CrfScores(*(torch.stack([s.float() for s in part]) for part in zip(*members)))

    def run(emissions: torch.Tensor, mask: torch.Tensor, lengths: list[int]) -> list[tuple[np.ndarray, list[str] | None]]:
        probs = crf_marginals(emissions, mask, scores).cpu().numpy()
        best = crf_viterbi(emissions, mask, scores).tolist() if paths else None
        return [(probs[row, :n], None if best is None else [TAGS[t] for t in best[row][:n]]) for row, n in enumerate(lengths)]

    per_member = _over_padded_batches(merged, run, predictors[0].batch_chars, predictors[0].device)
    return (
        [_with_empty([probs for probs, _ in member], sentences, _no_marginals) for member in per_member],
        [_with_empty([tags for _, tags in member], sentences, list) for member in per_member] if paths else None,
    )


def averaged_outputs(
    predictors: Sequence[SlotPredictor], sentences: Sequence[Sequence[str]], constraint: CrfScores | None = None
) -> tuple[list[np.ndarray], list[list[str]]]:
    """Marginals and Viterbi tags of ONE CRF over the members' mean emissions, scored by their mean
    start, transition and end scores plus `constraint` (e.g. -inf on moves that break BIO)."""
    merged = [p.emissions(sentences) for p in predictors]
    mean = [np.mean(np.stack(rows), axis=0) for rows in zip(*merged)]
    with torch.inference_mode():
        members = [CrfScores.of(p.model.crf) for p in predictors]
        scores = CrfScores(*(torch.stack([s.double() for s in part]).mean(0) for part in zip(*members)))
        if constraint is not None:
            scores = CrfScores(*(s + c.to(s) for s, c in zip(scores, constraint, strict=True)))

    def run(emissions: torch.Tensor, mask: torch.Tensor, lengths: list[int]) -> list[tuple[np.ndarray, list[str]]]:
        emissions = emissions.double()
        probs = crf_marginals(emissions, mask, scores).cpu().numpy()
        best = crf_viterbi(emissions, mask, scores).tolist()
        return [(probs[row, :n], [TAGS[t] for t in best[row][:n]]) for row, n in enumerate(lengths)]

    (results,) = _over_padded_batches([mean], run, predictors[0].batch_chars, predictors[0].device)
    return (
        _with_empty([probs for probs, _ in results], sentences, _no_marginals),
        _with_empty([tags for _, tags in results], sentences, list),
    )


def _over_padded_batches(
    merged: Sequence[Sequence[np.ndarray]], run: Callable, batch_chars: int, device: torch.device
) -> list[list]:
    """Sort sentences by length, batch them, pad each member's emissions and stack the members in the
    batch dimension; `run(emissions, mask, lengths)` returns one result per row. Results come back
    per member, in input order. `merged`: per member, its sentences' (n_chars, tags) emissions."""
    lengths = [len(m) for m in merged[0]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    results: list[list] = [[None] * len(lengths) for _ in merged]
    for batch in padded_batches(order, lengths.__getitem__, batch_chars, presorted=True):
        padded = [_pad_emissions([member[k] for k in batch], device) for member in merged]
        emissions, mask = torch.cat([e for e, _ in padded]), torch.cat([m for _, m in padded])
        with torch.inference_mode():
            outputs = run(emissions, mask, [lengths[k] for k in batch] * len(merged))
        for j, member in enumerate(results):
            for row, k in enumerate(batch):
                member[k] = outputs[j * len(batch) + row]
    return results


def pad_windows(windows: Sequence[Sequence[int]], vocab: CharVocab) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] ids [SEP] per window, right-padded with [PAD]; returns (input_ids, attention_mask)."""
    longest = max(len(w) for w in windows) + 2
    input_ids = torch.full((len(windows), longest), vocab.pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for k, w in enumerate(windows):
        input_ids[k, : len(w) + 2] = torch.tensor([vocab.cls_id, *w, vocab.sep_id])
        attention_mask[k, : len(w) + 2] = 1
    return input_ids, attention_mask


def pad_features(rows: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """(n, width) arrays (per-character features, emissions) zero-padded to `length` rows; float32."""
    padded = np.zeros((len(rows), length, rows[0].shape[1]), np.float32)
    for k, r in enumerate(rows):
        padded[k, : len(r)] = r
    return torch.from_numpy(padded)


def load_featurizer(model_dir: Path, spec: FeatureSpec) -> CharFeaturizer | None:
    """A model's featurizer; members of one ensemble with the same spec and term list share one,
    so each batch of sentences is featurised once for all of them."""
    if not spec.width:
        return None
    path = model_dir / LEXICON_FILE
    if spec.lexicon and not path.is_file():
        raise FileNotFoundError(f"{path}: the model's lexicon term list is missing")
    key = (spec, hashlib.sha256(path.read_bytes()).hexdigest() if spec.lexicon else "")
    if key not in _FEATURIZERS:
        _FEATURIZERS[key] = CharFeaturizer(spec, Lexicon.load(path) if spec.lexicon else None)
    return _FEATURIZERS[key]


_FEATURIZERS: dict[tuple[FeatureSpec, str], CharFeaturizer] = {}


def _pad_emissions(rows: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    padded = pad_features(rows, int(lengths.max()))
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    return to_device(padded, device), to_device(mask, device)


def padded_batches(items: Sequence, size_of, batch_tokens: int, presorted: bool = False) -> Iterator[list]:
    """Consecutive runs of length-sorted items whose padded size (count x longest) fits batch_tokens."""
    ordered = list(items) if presorted else sorted(items, key=size_of)
    batch: list = []
    for item in ordered:
        if batch and (len(batch) + 1) * size_of(item) > batch_tokens:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch
