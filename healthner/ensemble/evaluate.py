"""evaluate: score every base model and the shipped model on dev and test (conlleval-exact), and report.

Writes, under params.evaluate.reports_dir:
- metrics.json: {split: {model: Scores.as_dict()}} for dev and test, models = the four slots +
  `shipped` (what models/ensemble holds: a combiner or one member, stack.py's shipping rule).
- table2.md / table2.json: dev and test F1 of every asked-for combination of members (the paper's
  Table 2). A single member is its own CRF decode; several are a forest over their marginals.
- combiners.md / combiners.json: every candidate combiner over all members against the best member
  alone, dev (out-of-fold, mean and spread over seeds) and test, and which one ships.
- diversity.md / diversity.json: how differently each pair of members errs on dev.
- plots/: F1 per type per model (PNG + CSV), entity-type confusion of the shipped model on test
  (PNG + CSV), learning curves of the four slots, member diversity (PNG).
- errors.md: the test sentences where the shipped model is most wrong, entities marked inline.

Honesty of the dev numbers: base models were fit on train, so their dev scores are plain; every
combiner that learns is fit on dev, so its dev predictions are out-of-fold (by sentence). Member
outputs are computed once per split and shared by every combination.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations as subsets

import numpy as np
from tqdm import tqdm

from healthner.config import Params
from healthner.corpus.labels import spans
from healthner.corpus.readers import Sentence, read_sentences
from healthner.ensemble.combiner import forest_inputs, subset_predictions
from healthner.ensemble.diversity import diversity, diversity_markdown
from healthner.ensemble.kinds import FitData, MemberOutputs, fit_elsewhere, make_kind, out_of_fold
from healthner.ensemble.plots import entity_pairs, plot_confusion, plot_diversity, plot_f1_per_type, plot_learning_curves
from healthner.ensemble.shipped import Ensemble, member_outputs, read_manifest
from healthner.ensemble.stack import fit_data, load_predictors
from healthner.errors import ConfigError
from healthner.io import write_json
from healthner.model.devices import tag_device
from healthner.model.metrics import score
from healthner.model.scoring import SPLITS
from healthner.sections.base import SLOTS

SHIPPED = "shipped"
DISPLAY = {"bert": "BERT", "roberta": "RoBERTa", "electra": "ELECTRA", "albert": "ALBERT"}

log = logging.getLogger(__name__)


@dataclass
class SplitOutputs:
    """What every model says about one split, computed once."""

    sentences: list[Sentence]
    outputs: MemberOutputs

    @property
    def gold(self) -> list[list[str]]:
        return [s.tags for s in self.sentences]

    @property
    def marginals(self) -> dict[str, list[np.ndarray]]:
        return self.outputs.marginals

    @property
    def decoded(self) -> dict[str, list[list[str]]]:
        return self.outputs.paths


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
        raise ConfigError(f"evaluate.combinations names {unknown}, not among stack.members {list(members)}")
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
    for combo in tqdm(combos, desc="evaluate: combinations", unit="combo", disable=None):
        dev_tags, test_tags = known.get(combo) or combination_tags(combo, dev, test, params)
        rows.append(ComboRow(combo, score(dev.gold, dev_tags).f1, score(test.gold, test_tags).f1))
        log.info("evaluate: %s dev F1 %.4f, test F1 %.4f", "+".join(combo), rows[-1].dev_f1, rows[-1].test_f1)
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
        f"# Where the shipped model is most wrong ({split} split)",
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
    """Every slot's outputs (and their mean-emission CRF), computed as the shipped model computes them."""
    return SplitOutputs(sentences, member_outputs(predictors, [s.chars for s in sentences], averaged=True))


def shipped_tags(
    ensemble: Ensemble, dev: SplitOutputs, test: SplitOutputs, params: Params, training: FitData | None = None
) -> dict[str, list[list[str]]]:
    """The shipped model's tags: on dev held out from its kind when it learns (fit on the cross-fitted
    `training` outputs when given, else out-of-fold on dev), the saved model on test."""
    kind = ensemble.kind
    if training is not None and kind.fitted:
        held_out = fit_elsewhere(kind.name, kind.members, params.stack, training, dev.outputs, params.stack.seed)
    else:
        held_out = out_of_fold(kind.name, kind.members, params.stack, dev.outputs, dev.gold, params.stack.seed)
    return {"dev": held_out, "test": [p.tags for p in kind.predict(test.outputs)]}


def combiner_rows(params: Params, fit_on: FitData, test: SplitOutputs, selection: dict) -> list[dict]:
    """Each candidate combiner over all members, fit as the stack stage fits what ships (`fit_on`: dev,
    plus the cross-fitted train outputs when on) and scored on test, beside its held-out dev F1 from
    the stack stage; and the best member alone."""
    members, chosen = list(params.stack.members), selection.get("chosen", {})
    rows = []
    for name, dev_f1 in selection.get("candidates_dev_f1", {}).items():
        kind = make_kind(name, members, params.stack).fit(*fit_on)
        test_f1 = score(test.gold, [p.tags for p in kind.predict(test.outputs)]).f1
        rows.append({"kind": name, "members": members, "dev_f1": dev_f1["mean"], "dev_spread": dev_f1["spread"],
                     "test_f1": test_f1, "ships": chosen.get("kind") == name})
    best = chosen.get("best_member")
    if best:
        rows.append({"kind": "member", "members": [best], "dev_f1": chosen["best_member_f1"], "dev_spread": 0.0,
                     "test_f1": score(test.gold, test.decoded[best]).f1, "ships": chosen.get("kind") == "member"})
    return rows


def combiners_markdown(rows: Sequence[dict], reason: str, seeds: Sequence[int], crossfit_folds: int = 0) -> str:
    if crossfit_folds:
        how = ((f"Dev F1 with the combiners that learn fit on the members' out-of-fold train outputs ({crossfit_folds}-fold "
                f"cross-fitting), dev held out, mean (and spread) over seeds {list(seeds)};"),
               "test F1 of the combiner fit on those plus dev.")
    else:
        how = (f"Dev F1 out-of-fold where the combiner learns from dev, mean (and spread) over seeds {list(seeds)};",
               "test F1 of the combiner fit on all of dev.")
    lines = [
        "# Combiners against the best member alone",
        "",
        how[0],
        f"{how[1]} Chosen on dev alone (stack stage): {reason}.",
        "",
        "| kind | members | dev F1 | dev spread | test F1 | ships |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        names = " + ".join(DISPLAY.get(m, m) for m in r["members"])
        lines.append(
            f"| {r['kind']} | {names} | {r['dev_f1']:.4f} | {r['dev_spread']:.4f} | {r['test_f1']:.4f} "
            f"| {'yes' if r['ships'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def base_predictors(params: Params, ensemble: Ensemble) -> dict:
    """Every slot's predictor; the stack's members are its own copies (what ships is what is scored)."""
    base = [slot for slot in SLOTS if slot in params.encoders]
    others = load_predictors(params, [slot for slot in base if slot not in ensemble.predictors])
    return {slot: ensemble.predictors.get(slot) or others[slot] for slot in base}


def write_table2(params: Params, ensemble: Ensemble, data: dict[str, SplitOutputs], shipped: dict) -> list[ComboRow]:
    out = params.evaluate.reports_dir
    same = ensemble.kind.name == "forest" and ensemble.members == list(params.stack.members)
    known = {tuple(ensemble.members): (shipped["dev"], shipped["test"])} if same else {}
    combos = member_combinations(params.stack.members, params.evaluate.combinations)
    rows = table2_rows(combos, data["dev"], data["test"], params, known)
    (out / "table2.md").write_text(table2_markdown(rows, params.stack.cv_folds), encoding="utf-8")
    write_json(out / "table2.json", table2_json(rows))
    return rows


def write_combiners_and_diversity(params: Params, data: dict[str, SplitOutputs], fit_on: FitData) -> None:
    out, members = params.evaluate.reports_dir, list(params.stack.members)
    selection = read_manifest(params.stack.output_dir).get("selection", {})
    rows = combiner_rows(params, fit_on, data["test"], selection)
    reason = selection.get("chosen", {}).get("reason", "")
    markdown = combiners_markdown(rows, reason, params.stack.selection_seeds, params.stack.crossfit.folds)
    (out / "combiners.md").write_text(markdown, encoding="utf-8")
    write_json(out / "combiners.json", {"rows": rows, "selection": selection})
    pairs = diversity(data["dev"].outputs, data["dev"].gold, members)
    (out / "diversity.md").write_text(diversity_markdown(pairs, "dev"), encoding="utf-8")
    write_json(out / "diversity.json", pairs)
    plot_diversity(pairs, members, out / "plots" / "diversity.png", "Members on dev")


def write_plots_and_errors(params: Params, metrics: dict, test: SplitOutputs, shipped_test: list[list[str]]) -> None:
    out = params.evaluate.reports_dir
    plots = out / "plots"
    plot_f1_per_type(metrics["test"], plots / "f1_per_type.png", plots / "f1_per_type", "F1 per entity type, test")
    pairs = entity_pairs(test.gold, shipped_test)
    plot_confusion(
        pairs, plots / "confusion.png", plots / "confusion.csv", "Shipped model on test: gold vs predicted entity"
    )
    plot_learning_curves(params.train.reports_dir, list(test.decoded), plots / "learning_curves.png")
    errors = errors_markdown(test.sentences, shipped_test, params.evaluate.error_examples, "test")
    (out / "errors.md").write_text(errors, encoding="utf-8")


def metrics_summary(metrics: dict) -> str:
    """One line per split: each model's entity F1 (what `healthner evaluate` prints)."""
    return "\n".join(
        f"{split}: " + "  ".join(f"{model} {scores['f1']:.4f}" for model, scores in models.items())
        for split, models in metrics.items()
    )


def evaluate(params: Params) -> dict:
    """Score everything, write every report; returns the metrics written to metrics.json."""
    device = tag_device(params.tag)
    ensemble = Ensemble.load(params.stack.output_dir, device, **params.tag.batches_for(device))
    predictors = base_predictors(params, ensemble)
    prepared = params.prepare.output_dir
    started = time.perf_counter()
    data = {
        name: split_outputs(read_sentences(prepared / f"{name}.parquet"), predictors)
        for name in tqdm(SPLITS, desc="evaluate: members' outputs", unit="split", disable=None)
    }
    log.info("evaluate: members' outputs on %s in %.1f s", "/".join(SPLITS), time.perf_counter() - started)
    training, fit_on = fit_data(params, list(params.stack.members), data["dev"].outputs, data["dev"].gold)
    shipped = shipped_tags(ensemble, data["dev"], data["test"], params, training)
    metrics = {
        name: {
            **{slot: score(d.gold, tags).as_dict() for slot, tags in d.decoded.items()},
            SHIPPED: score(d.gold, shipped[name]).as_dict(),
        }
        for name, d in data.items()
    }
    write_json(params.evaluate.reports_dir / "metrics.json", metrics)
    write_table2(params, ensemble, data, shipped)
    write_combiners_and_diversity(params, data, fit_on)
    write_plots_and_errors(params, metrics, data["test"], shipped["test"])
    return metrics
