"""The predictor that runs one trained slot (its folder: folder.py).

Any sentence length works: each sentence is cut into the model's windows, the windows of all
sentences are sorted by length and batched, the per-window emissions are merged back per sentence
(windows.merge_windows), and the CRF then runs over the whole sentence, so marginals and Viterbi
paths are sentence-level and valid BIO across window seams.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from healthner.corpus.labels import TAGS
from healthner.corpus.lexicon import Lexicon
from healthner.corpus.vocab import VOCAB_FILE, CharVocab
from healthner.corpus.windows import make_windows, merge_windows
from healthner.model.crf import CrfScores, crf_marginals, crf_viterbi
from healthner.model.devices import to_device
from healthner.model.encoders import encoder_from_config_dict
from healthner.model.features import CharFeaturizer, FeatureSpec
from healthner.model.folder import CONFIG_FILE, LEXICON_FILE, MODEL_FILE, MemberFiles, read_member
from healthner.model.network import NerTagger
from healthner.model.onnx_runtime import OnnxEmissions, onnx_runner
from healthner.model.precision import resolve_precision, with_precision
from healthner.sections.tagging import TagParams

DEFAULT_BATCH_CHARS = TagParams().batch_chars  # tag.batch_chars's default, for a load made without params


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
        model_dir: Path | str | MemberFiles,
        device: str = "cpu",
        batch_chars: int = DEFAULT_BATCH_CHARS,
        precision: str = "float32",
        runtime: str = "torch",
        forward_batch_chars: int | None = None,
    ) -> SlotPredictor:
        """A trained slot from its folder's files (a folder is read once: folder.read_member), built from
        those bytes alone, run in `precision` (precision.resolve_precision); its forward passes under
        `runtime` (onnx_runtime.resolve_runtime), the CRF always in torch."""
        files = model_dir if isinstance(model_dir, MemberFiles) else read_member(model_dir)
        config = json.loads(files.text(CONFIG_FILE))
        if tuple(config["tags"]) != TAGS:
            raise ValueError(f"{files.folder}: trained on tags {config['tags']}, expected labels.TAGS")
        model = NerTagger(encoder_from_config_dict(config["encoder_config"]), **config["model"])
        model.load_state_dict(load_safetensors(files.require(MODEL_FILE)))
        model.to(device).eval()
        precision = resolve_precision(precision, device)
        model = with_precision(model, precision, torch.device(device))
        vocab = CharVocab.parse(files.text(VOCAB_FILE))
        featurizer = load_featurizer(files, FeatureSpec(**config.get("features", {})))
        runner = onnx_runner(files, runtime, device, precision)
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
        return [
            (probs[row, :n], None if best is None else [TAGS[t] for t in best[row][:n]]) for row, n in enumerate(lengths)
        ]

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


def load_featurizer(files: MemberFiles, spec: FeatureSpec) -> CharFeaturizer | None:
    """A model's featurizer, its term list from `files`; members of one ensemble with the same spec and
    term list share one, so each batch of sentences is featurised once for all of them."""
    if not spec.width:
        return None
    terms = files.get(LEXICON_FILE) if spec.lexicon else b""
    if terms is None:
        raise FileNotFoundError(f"{files.folder / LEXICON_FILE}: the model's lexicon term list is missing")
    key = (spec, hashlib.sha256(terms).hexdigest() if spec.lexicon else "")
    if key not in _FEATURIZERS:
        lexicon = Lexicon.parse(terms.decode("utf-8"), files.folder / LEXICON_FILE) if spec.lexicon else None
        _FEATURIZERS[key] = CharFeaturizer(spec, lexicon)
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
