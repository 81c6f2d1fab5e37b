"""train: fit one encoder slot (encoder -> BiLSTM -> CRF) on the prepared windows; keep the best by dev F1.

Dev F1 is the entity F1 (conlleval-exact) on whole dev sentences, predicted through SlotPredictor,
the same code path that stacking and tagging use. The best epoch is saved as safetensors + JSON.
A student also trains on silver windows (a teacher's labels, model/silver.py): batches are gold or
silver, never both, so a silver batch's loss (the teacher's tags under the usual objective, or the
KL to its probabilities) is weighed by `student.silver_weight`; `student.curriculum` mixes the two
kinds of batch in every epoch or runs silver epochs first.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from healthner.config import Params
from healthner.corpus.lexicon import Lexicon
from healthner.corpus.readers import read_sentences
from healthner.corpus.vocab import CharVocab, check_vocab_source
from healthner.errors import UnknownName
from healthner.io import write_json
from healthner.model.devices import resolve_device
from healthner.model.encoders import SPECIAL_TOKENS_PER_WINDOW, build_encoder
from healthner.model.features import CharFeaturizer
from healthner.model.folder import MODEL_FILE, Architecture, feature_spec, save_model
from healthner.model.losses import Objective, window_labels
from healthner.model.metrics import score
from healthner.model.network import NerTagger
from healthner.model.onnx_runtime import export_member
from healthner.model.predict import SlotPredictor, pad_features
from healthner.model.silver import SilverSet, SilverWindows

BUCKET_BATCHES = 50  # batches per length-sorting bucket: little padding, yet batches still shuffle
SUMMARY_FILE = "train_summary.json"


@dataclass
class TrainResult:
    slot: str
    best_dev_f1: float
    epochs_run: int
    seconds: float
    model_dir: Path
    best_epoch: int = 0
    steps: int = 0
    chars_per_second: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.slot}: best dev F1 {self.best_dev_f1:.4f} (epoch {self.best_epoch}/{self.epochs_run}, "
            f"{self.steps} steps, {self.seconds:.0f}s, {self.chars_per_second:.0f} chars/s) -> {self.model_dir}"
        )


@dataclass
class Windows:
    """A slot's training windows: token ids with [CLS]/[SEP], gold ids per character."""

    input_ids: list[np.ndarray]
    labels: list[np.ndarray]
    features: list[np.ndarray] | None = None  # per window its characters' features (float16)
    targets: list[np.ndarray] | None = None  # per window a teacher's tag probabilities (silver, soft targets)

    @classmethod
    def read(cls, path: Path, featurizer: CharFeaturizer | None = None, held_out: frozenset[str] = frozenset()) -> Windows:
        """The windows of `path`, except those of the sentences in `held_out` (sent_id)."""
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; run the prepare step first (dvc repro prepare)")
        table = pq.read_table(path, columns=["sent_id", "input_ids", "label_ids", "chars"])
        if held_out:
            keep = [sent_id not in held_out for sent_id in table.column("sent_id").to_pylist()]
            table = table.filter(keep)
        cols = table.to_pydict()
        ids = [np.asarray(x, dtype=np.int64) for x in cols["input_ids"]]
        labels = [np.asarray(window_labels(x), dtype=np.int64) for x in cols["label_ids"]]
        features = [f.astype(np.float16) for f in featurizer.compute(cols["chars"])] if featurizer else None
        return cls(ids, labels, features)

    @classmethod
    def from_silver(cls, silver: SilverWindows, featurizer: CharFeaturizer | None = None) -> Windows:
        features = [f.astype(np.float16) for f in featurizer.compute(silver.chars)] if featurizer else None
        return cls(silver.input_ids, silver.labels, features, silver.targets)

    def __len__(self) -> int:
        return len(self.input_ids)

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    @property
    def n_chars(self) -> int:
        return sum(len(x) for x in self.labels)

    def collate(self, index: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(input_ids, attention_mask, labels, character features or None) padded to the batch's longest window."""
        longest = max(len(self.input_ids[i]) for i in index)
        ids = np.full((len(index), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(index), longest), dtype=np.int64)
        labels = np.zeros((len(index), longest - SPECIAL_TOKENS_PER_WINDOW), dtype=np.int64)
        for row, i in enumerate(index):
            n = len(self.input_ids[i])
            ids[row, :n], mask[row, :n] = self.input_ids[i], 1
            labels[row, : n - SPECIAL_TOKENS_PER_WINDOW] = self.labels[i]
        features = None if self.features is None else pad_features([self.features[i] for i in index], labels.shape[1])
        return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(labels), features

    def collate_targets(self, index: list[int], length: int) -> torch.Tensor:
        """The windows' soft targets, padded with zero rows (padding adds nothing to the KL) to `length`."""
        return pad_features([self.targets[i] for i in index], length)


def bucketed_batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle, sort within buckets of BUCKET_BATCHES batches by length, cut into batches, shuffle them."""
    order = rng.permutation(len(lengths))
    bucket = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for b in range(0, len(order), bucket):
        chunk = sorted(order[b : b + bucket].tolist(), key=lambda i: lengths[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_featurizer(params: Params) -> CharFeaturizer | None:
    """The character features params.model asks for; None when it asks for none."""
    spec = feature_spec(params.model)
    if not spec.width:
        return None
    return CharFeaturizer(spec, Lexicon.load(params.lexicon.output) if spec.lexicon else None)


def build_model(params: Params, slot: str, vocab: CharVocab) -> NerTagger:
    encoder = build_encoder(params.encoders[slot], vocab, params.prepare.window_chars + SPECIAL_TOKENS_PER_WINDOW)
    model = NerTagger(encoder, **asdict(Architecture.from_params(params.model)))
    if model.lac is not None:
        model.lac.load_pretrained(vocab)
    return model


def parameter_groups(model: NerTagger, params: Params, slot: str) -> list[dict]:
    """The optimiser's groups: pretrained weights (a fine-tuned LAC; the encoder when its init is
    pretrained) at train.pretrained_lr, the rest at train.learning_rate. One group when either side
    is empty or pretrained_lr is unset, so such runs are the same as before the option existed."""
    cfg = params.train
    pretrained = [model.lac] if model.lac is not None else []
    if params.encoders[slot].init == "pretrained":
        pretrained.append(model.encoder)
    slow = {id(p) for module in pretrained for p in module.parameters()}
    if cfg.pretrained_lr is None or not slow:
        return [{"params": list(model.parameters())}]
    return [
        {"params": [p for p in model.parameters() if id(p) in slow], "lr": cfg.pretrained_lr},
        {"params": [p for p in model.parameters() if id(p) not in slow]},
    ]


class _Trainer:
    """One slot's training run; the loop pieces are methods so each stays small."""

    def __init__(self, params: Params, slot: str, held_out: frozenset[str] = frozenset(), silver: SilverSet | None = None):
        if slot not in params.encoders:
            raise UnknownName(f"unknown slot {slot!r}; params.yaml encoders has {sorted(params.encoders)}")
        self.params, self.slot, self.cfg = params, slot, params.train
        self.device = resolve_device(self.cfg.device)
        prepared = params.prepare.output_dir
        self.vocab = CharVocab.load(prepared / slot)
        check_vocab_source(prepared / slot, params.encoders[slot], self.vocab)
        self.features = feature_spec(params.model)
        self.featurizer = training_featurizer(params)
        self.train_windows = Windows.read(prepared / slot / "train.parquet", self.featurizer, held_out)
        self.student, self.silver = params.student, None
        if silver is not None and len(silver):
            cut = silver.windows(self.vocab, params.prepare.window_chars, params.prepare.window_overlap)
            self.silver = Windows.from_silver(cut, self.featurizer)
        self.dev = read_sentences(prepared / "dev.parquet")
        self.dev_chars = [s.chars for s in self.dev]  # one list, so its features are computed once, not per epoch
        self.model = build_model(params, slot, self.vocab).to(self.device)
        self.objective = Objective(params.loss, params.model.use_crf)
        self.predictor = SlotPredictor(
            self.model, self.vocab, params.prepare.window_chars, params.prepare.window_overlap,
            self.device, featurizer=self.featurizer, **params.tag.batches_for(str(self.device)),
        )
        self.model_dir = self.cfg.output_dir / slot
        self.rng = np.random.default_rng(self.cfg.seed)
        self.steps, self.train_seconds, self.train_chars, self.total_steps = 0, 0.0, 0, 0

    def optimiser(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        total = sum(sum(w.batches_per_epoch(self.cfg.batch_size) for w in self.sets(phase)) for phase in self.phases())
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        groups = parameter_groups(self.model, self.params, self.slot)
        opt = torch.optim.AdamW(groups, lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay)
        self.total_steps = max(total, 1)
        warmup = int(self.cfg.warmup_ratio * self.total_steps)
        return opt, get_linear_schedule_with_warmup(opt, warmup, self.total_steps)

    def out_of_steps(self) -> bool:
        return self.cfg.max_steps is not None and self.steps >= self.cfg.max_steps

    def phases(self) -> list[str]:
        """What each epoch trains on: gold; with silver, gold and silver mixed, or silver epochs, then gold."""
        if self.silver is None:
            return ["gold"] * self.cfg.epochs
        if self.student.curriculum == "silver_then_gold":
            return ["silver"] * self.student.silver_epochs + ["gold"] * self.cfg.epochs
        return ["mixed"] * self.cfg.epochs

    def sets(self, phase: str) -> list[Windows]:
        return {"gold": [self.train_windows], "silver": [self.silver], "mixed": [self.train_windows, self.silver]}[phase]

    def epoch_batches(self, phase: str) -> list[tuple[Windows, list[int]]]:
        """Length-bucketed batches of each set of the phase, shuffled together (a batch holds one set)."""
        per_set = [
            [
                (windows, index)
                for index in bucketed_batches([len(x) for x in windows.input_ids], self.cfg.batch_size, self.rng)
            ]
            for windows in self.sets(phase)
        ]
        if len(per_set) == 1:
            return per_set[0]
        joined = [batch for batches in per_set for batch in batches]
        return [joined[i] for i in self.rng.permutation(len(joined))]

    def train_epoch(self, opt: torch.optim.Optimizer, sched, bar: tqdm, phase: str = "gold") -> float:
        """One pass over the phase's shuffled, length-bucketed windows; returns the mean loss."""
        self.model.train()
        losses: list[float] = []
        start = time.perf_counter()
        for windows, index in self.epoch_batches(phase):
            if self.out_of_steps():
                break
            losses.append(self.step(windows, index, opt, sched))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
        self.train_seconds += time.perf_counter() - start
        return float(np.mean(losses)) if losses else float("nan")

    def step(self, windows: Windows, index: list[int], opt: torch.optim.Optimizer, sched) -> float:
        batch = windows.collate(index, self.vocab.pad_id)
        ids, mask, labels, features = (None if t is None else t.to(self.device) for t in batch)
        with self.autocast():
            if windows is not self.silver:
                loss = self.objective(self.model, ids, mask, labels, features).total
            elif self.student.targets == "soft":
                targets = windows.collate_targets(index, labels.shape[1]).to(self.device)
                loss = self.student.silver_weight * self.objective.soft(self.model, ids, mask, targets, features).total
            else:
                loss = self.student.silver_weight * self.objective(self.model, ids, mask, labels, features).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        opt.step()
        sched.step()
        self.model.enforce_constraints()
        self.steps += 1
        self.train_chars += int(mask.sum()) - SPECIAL_TOKENS_PER_WINDOW * len(index)
        return loss.item()

    def autocast(self):
        enabled = self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def dev_f1(self) -> float:
        if not self.dev:
            return 0.0
        predicted = self.predictor.decode(self.dev_chars)
        return score([s.tags for s in self.dev], predicted).f1

    def save(self) -> None:
        save_model(
            self.model_dir, self.model, self.vocab, Architecture.from_params(self.params.model),
            self.params.encoders[self.slot], self.params.prepare.window_chars, self.params.prepare.window_overlap,
            self.features, self.params.lexicon.output,
        )


def _open_live(path: Path):
    """DVCLive logger writing plots/metrics/*.tsv under `path`; never touches dvc.yaml or experiments."""
    from dvclive import Live

    return Live(dir=str(path), save_dvc_exp=False, dvcyaml=False)


def train(params: Params, slot: str, held_out: frozenset[str] = frozenset(), silver: SilverSet | None = None) -> TrainResult:
    """Train `slot`, early-stopping on dev entity F1; the best epoch is saved to train.output_dir/slot.
    `held_out`: train sentences (sent_id) whose windows it never sees (a cross-fitting fold);
    `silver`: a teacher's labelled sentences to learn from as well, as params.student says (a student)."""
    params = params.for_slot(slot)
    cfg = params.train
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    trainer = _Trainer(params, slot, held_out, silver)
    opt, sched = trainer.optimiser()
    started = time.perf_counter()
    best_f1, best_epoch, epochs_run, stale = -1.0, 0, 0, 0
    live = _open_live(cfg.reports_dir / slot)
    bar = tqdm(total=trainer.total_steps, desc=f"train {slot}", unit="step")
    try:
        for epoch, phase in enumerate(trainer.phases(), start=1):
            if trainer.out_of_steps():
                break
            loss = trainer.train_epoch(opt, sched, bar, phase)
            f1 = trainer.dev_f1()
            epochs_run = epoch
            bar.set_postfix(loss=f"{loss:.4f}", dev_f1=f"{f1:.4f}", epoch=epoch)
            _log_epoch(live, loss, f1, sched.get_last_lr()[-1])
            if f1 > best_f1 or not trainer.dev:
                best_f1, best_epoch, stale = f1, epoch, 0
                trainer.save()
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    finally:
        bar.close()
        live.end()
    result = TrainResult(
        slot, max(best_f1, 0.0), epochs_run, time.perf_counter() - started, trainer.model_dir, best_epoch,
        trainer.steps, trainer.train_chars / max(trainer.train_seconds, 1e-9),
    )
    _write_summary(result, trainer)
    if cfg.export_onnx and (trainer.model_dir / MODEL_FILE).is_file():
        best = SlotPredictor.load(trainer.model_dir).model  # the saved best epoch, float32 on the CPU
        export_member(trainer.model_dir, best)  # its emissions graph, for CPU tagging under onnxruntime
    return result


def _log_epoch(live, loss: float, f1: float, lr: float) -> None:
    live.log_metric("train/loss", loss)
    live.log_metric("dev/f1", f1)
    live.log_metric("train/lr", lr)
    live.next_step()


def _write_summary(result: TrainResult, trainer: _Trainer) -> None:
    summary = {**asdict(result), "model_dir": str(result.model_dir), "device": str(trainer.device),
               "train_windows": len(trainer.train_windows), "train_chars_per_epoch": trainer.train_windows.n_chars,
               "silver_windows": len(trainer.silver) if trainer.silver is not None else 0,
               "dev_sentences": len(trainer.dev)}
    write_json(result.model_dir / SUMMARY_FILE, summary, ascii_only=True)
