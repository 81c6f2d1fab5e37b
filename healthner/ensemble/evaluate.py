"""evaluate: score every base model and the stack on dev and test (conlleval-exact), and report.

Writes, under params.evaluate.reports_dir:
- metrics.json: {split: {model: Scores.as_dict()}} for dev and test, models = the four slots + stack.
- table2.md / table2.json: dev and test F1 of every asked-for combination of members (the paper's
  Table 2). A single member is its own CRF decode; several are a forest over their marginals.
- plots/: F1 per type per model (PNG + CSV), entity-type confusion of the stack on test
  (PNG + CSV), learning curves of the four slots (PNG).
- errors.md: the test sentences where the stack is most wrong, entities marked inline.

Honesty of the dev numbers: base models were fit on train, so their dev scores are plain; every
forest is fit on dev, so its dev predictions are out-of-fold (GroupKFold by sentence). Marginals
are computed once per split per model and shared by every combination.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations as subsets
from pathlib import Path

import numpy as np

from healthner.config import SLOTS, Params
from healthner.corpus.labels import spans
from healthner.corpus.readers import Sentence, read_sentences
from healthner.ensemble.combiner import cross_validated_predictions, forest_inputs, subset_predictions
from healthner.ensemble.plots import entity_pairs, plot_confusion, plot_f1_per_type, plot_learning_curves
from healthner.ensemble.shipped import Ensemble, member_outputs
from healthner.ensemble.stack import inference_device, load_predictors
from healthner.model.metrics import score

SPLITS = ("dev", "test")
STACK = "stack"
DISPLAY = {"bert": "BERT", "roberta": "RoBERTa", "electra": "ELECTRA", "albert": "ALBERT"}


@dataclass
class SplitOutputs:
    """What every model says about one split, computed once."""

    sentences: list[Sentence]
    marginals: dict[str, list[np.ndarray]]
    decoded: dict[str, list[list[str]]]

    @property
    def gold(self) -> list[list[str]]:
        return [s.tags for s in self.sentences]


@dataclass(frozen=True)
class ComboRow:
    members: tuple[str, ...]
    dev_f1: float
    test_f1: float

    @property
    def name(self) -> str:
        return " + ".join(DISPLAY.get(m, m) for m in self.members)


# --- combinations --------------------------------------------------------------------------------


def member_combinations(members: Sequence[str], asked: str | list[list[str]]) -> list[tuple[str, ...]]:
    """'all' = every non-empty subset (largest first, members' order kept); else the listed ones."""
    if asked == "all":
        return [c for k in range(len(members), 0, -1) for c in subsets(members, k)]
    unknown = sorted({m for combo in asked for m in combo} - set(members))
    if unknown:
        raise ValueError(f"evaluate.combinations names {unknown}, not among stack.members {list(members)}")
    return [tuple(m for m in members if m in combo) for combo in asked if combo]


def combination_tags(
    combo: Sequence[str], dev: SplitOutputs, test: SplitOutputs, params: Params
) -> tuple[list[list[str]], list[list[str]]]:
    """(dev tags, test tags) of one combination; forests' dev tags are out-of-fold."""
    if len(combo) == 1:
        return dev.decoded[combo[0]], test.decoded[combo[0]]
    viterbi = params.stack.viterbi_features
    dev_inputs, order = forest_inputs(dev.marginals, dev.decoded, combo, viterbi)
    test_inputs, _ = forest_inputs(test.marginals, test.decoded, combo, viterbi)
    dev_pred, test_pred = subset_predictions(dev_inputs, dev.gold, test_inputs, order, params.stack)
    return [p.tags for p in dev_pred], [p.tags for p in test_pred]


def table2_rows(
    combos: Sequence[tuple[str, ...]], dev: SplitOutputs, test: SplitOutputs, params: Params, known: dict
) -> list[ComboRow]:
    """One row per combination; `known` maps a combination to (dev tags, test tags) already at hand."""
    rows = []
    for combo in combos:
        dev_tags, test_tags = known.get(combo) or combination_tags(combo, dev, test, params)
        rows.append(ComboRow(combo, score(dev.gold, dev_tags).f1, score(test.gold, test_tags).f1))
    return rows


def table2_markdown(rows: Sequence[ComboRow], cv_folds: int) -> str:
    best = max(rows, key=lambda r: r.dev_f1)
    lines = [
        "# Table 2: F1 of each combination of base models",
        "",
        "One member: that model's own BiLSTM-CRF decode. Several: a random forest over their CRF marginals,",
        f"fit on dev; its dev F1 is out-of-fold ({cv_folds}-fold, grouped by sentence), its test F1 is from",
        "the forest fit on all of dev. Test (held out) was never used to fit or choose anything.",
        "",
        "| model | dev F1 | test F1 | |",
        "| --- | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {row.dev_f1:.4f} | {row.test_f1:.4f} | {'best on dev' if row is best else ''} |")
    return "\n".join(lines) + "\n"


def table2_json(rows: Sequence[ComboRow]) -> list[dict]:
    return [{"model": r.name, "members": list(r.members), "dev_f1": r.dev_f1, "test_f1": r.test_f1} for r in rows]


# --- errors --------------------------------------------------------------------------------------


def mark_entities(chars: Sequence[str], tags: Sequence[str]) -> str:
    """The sentence with each entity (as conlleval reads it) written `[text]TYPE`."""
    pieces, pos = [], 0
    for span in spans(tags):
        pieces += [*chars[pos : span.start], "[", *chars[span.start : span.end], f"]{span.type}"]
        pos = span.end
    return "".join(pieces + list(chars[pos:]))


def error_counts(gold: Sequence[str], predicted: Sequence[str]) -> tuple[int, int]:
    """(missed, spurious): gold entities not predicted exactly, predicted entities not in gold."""
    g, p = set(spans(gold)), set(spans(predicted))
    return len(g - p), len(p - g)


def errors_markdown(sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]], limit: int, split: str) -> str:
    ranked = sorted(
        ((sum(error_counts(s.tags, p)), i) for i, (s, p) in enumerate(zip(sentences, predicted)) if s.tags != list(p)),
        key=lambda pair: (-pair[0], pair[1]),
    )[:limit]
    lines = [
        f"# Where the stack is most wrong ({split} split)",
        "",
        f"The {len(ranked)} sentences with the most missed + spurious entities (exact span and type, as conlleval",
        "counts them). Entities are marked `[text]TYPE`.",
        "",
    ]
    for total, i in ranked:
        s, pred = sentences[i], predicted[i]
        missed, spurious = error_counts(s.tags, pred)
        lines += [
            f"## {s.sent_id} ({s.source}:{s.line}): {missed} missed, {spurious} spurious",
            "",
            f"- gold: {mark_entities(s.chars, s.tags)}",
            f"- pred: {mark_entities(s.chars, pred)}",
            "",
        ]
    return "\n".join(lines)


# --- the step ------------------------------------------------------------------------------------


def split_outputs(sentences: list[Sentence], predictors: dict) -> SplitOutputs:
    """Each slot's marginals and Viterbi tags, computed as the stack computes them (member_outputs)."""
    marginals, decoded = member_outputs(predictors, [s.chars for s in sentences], viterbi=True)
    return SplitOutputs(sentences, marginals, decoded)


def stack_tags(ensemble: Ensemble, dev: SplitOutputs, test: SplitOutputs, params: Params) -> dict[str, list[list[str]]]:
    """The shipped stack's tags: out-of-fold on dev, the saved forest itself on test."""
    members = ensemble.members
    dev_inputs, order = forest_inputs(dev.marginals, dev.decoded, members, ensemble.viterbi_features)
    stack_params = params.stack.model_copy(update={"context": ensemble.context})
    cv = cross_validated_predictions(dev_inputs, dev.gold, order, stack_params)
    shipped = ensemble.predict_from_marginals(test.marginals, test.decoded)
    return {"dev": [p.tags for p in cv], "test": [p.tags for p in shipped]}


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def base_predictors(params: Params, ensemble: Ensemble) -> dict:
    """Every slot's predictor; the stack's members are its own copies (what ships is what is scored)."""
    base = [slot for slot in SLOTS if slot in params.encoders]
    others = load_predictors(params, [slot for slot in base if slot not in ensemble.predictors])
    return {slot: ensemble.predictors.get(slot) or others[slot] for slot in base}


def write_table2(params: Params, ensemble: Ensemble, data: dict[str, SplitOutputs], stacked: dict) -> list[ComboRow]:
    out = params.evaluate.reports_dir
    known = {tuple(ensemble.members): (stacked["dev"], stacked["test"])}
    combos = member_combinations(params.stack.members, params.evaluate.combinations)
    rows = table2_rows(combos, data["dev"], data["test"], params, known)
    (out / "table2.md").write_text(table2_markdown(rows, params.stack.cv_folds), encoding="utf-8")
    _write_json(out / "table2.json", table2_json(rows))
    return rows


def write_plots_and_errors(params: Params, metrics: dict, test: SplitOutputs, stack_test: list[list[str]]) -> None:
    out = params.evaluate.reports_dir
    plots = out / "plots"
    plot_f1_per_type(metrics["test"], plots / "f1_per_type.png", plots / "f1_per_type", "F1 per entity type, test")
    pairs = entity_pairs(test.gold, stack_test)
    plot_confusion(pairs, plots / "confusion.png", plots / "confusion.csv", "Stack on test: gold vs predicted entity")
    plot_learning_curves(params.train.reports_dir, list(test.decoded), plots / "learning_curves.png")
    errors = errors_markdown(test.sentences, stack_test, params.evaluate.error_examples, "test")
    (out / "errors.md").write_text(errors, encoding="utf-8")


def metrics_summary(metrics: dict) -> str:
    """One line per split: each model's entity F1 (what `healthner evaluate` prints)."""
    return "\n".join(
        f"{split}: " + "  ".join(f"{model} {scores['f1']:.4f}" for model, scores in models.items())
        for split, models in metrics.items()
    )


def evaluate(params: Params) -> dict:
    """Score everything, write every report; returns the metrics written to metrics.json."""
    ensemble = Ensemble.load(params.stack.output_dir, inference_device(params), batch_chars=params.tag.batch_chars)
    predictors = base_predictors(params, ensemble)
    prepared = params.prepare.output_dir
    data = {name: split_outputs(read_sentences(prepared / f"{name}.parquet"), predictors) for name in SPLITS}
    stacked = stack_tags(ensemble, data["dev"], data["test"], params)
    metrics = {
        name: {
            **{slot: score(d.gold, tags).as_dict() for slot, tags in d.decoded.items()},
            STACK: score(d.gold, stacked[name]).as_dict(),
        }
        for name, d in data.items()
    }
    _write_json(params.evaluate.reports_dir / "metrics.json", metrics)
    write_table2(params, ensemble, data, stacked)
    write_plots_and_errors(params, metrics, data["test"], stacked["test"])
    return metrics


def score_model(params: Params, model_dir: Path, split: str) -> dict:
    """Scores of one trained slot folder (its own CRF decode) on a prepared split: the ablation rows."""
    from healthner.model.predict import SlotPredictor

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    sentences = read_sentences(params.prepare.output_dir / f"{split}.parquet")
    predictor = SlotPredictor.load(model_dir, device=inference_device(params), batch_chars=params.tag.batch_chars)
    predicted = predictor.decode([s.chars for s in sentences])
    return score([s.tags for s in sentences], predicted).as_dict()
