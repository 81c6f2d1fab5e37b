"""Plots for people: F1 per entity type, an entity-type confusion matrix, learning curves.

Each data-series plot is written twice: a PNG to look at, and a CSV that `dvc plots` can render
and diff across revisions (see the `plots:` section of dvc.yaml).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt
import numpy as np

from healthner.corpus.labels import ENTITY_TYPES, spans

MISSED = "MISSED"  # predicted column of a gold entity no prediction matches by exact span
SPURIOUS = "SPURIOUS"  # gold row of a predicted entity no gold entity matches by exact span
DPI = 120
BAR_GROUP_WIDTH = 0.8  # share of each type's slot on the x axis taken by its bars
CURVE_COLUMNS_PER_ROW = 3


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _save(fig: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# --- F1 per type ---------------------------------------------------------------------------------


def f1_per_type_rows(per_model: Mapping[str, dict]) -> list[tuple[str, str, float]]:
    """(model, type, f1) for every model and every entity type (0 where a type had no entity)."""
    return [
        (model, etype, float(scores["per_type"].get(etype, {}).get("f1", 0.0)))
        for model, scores in per_model.items()
        for etype in ENTITY_TYPES
    ]


def plot_f1_per_type(per_model: Mapping[str, dict], png: Path, data_dir: Path, title: str) -> None:
    """Grouped bars: one group per entity type, one bar per model. `data_dir` gets one CSV per model
    (type, f1): `dvc plots` draws one panel per file and compares revisions within each."""
    rows = f1_per_type_rows(per_model)
    for model in per_model:
        _write_csv(data_dir / f"{model}.csv", ("type", "f1"), [(t, f1) for m, t, f1 in rows if m == model])
    models = list(per_model)
    width = BAR_GROUP_WIDTH / max(len(models), 1)
    x = np.arange(len(ENTITY_TYPES))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for k, model in enumerate(models):
        values = [f1 for m, _, f1 in rows if m == model]
        overall = per_model[model]["f1"]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=f"{model} (overall {overall:.3f})")
    ax.set_xticks(x, ENTITY_TYPES)
    ax.set_ylim(0, 1)
    ax.set_ylabel("entity F1")
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(len(models), 5), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    _save(fig, png)


# --- confusion of entity types -------------------------------------------------------------------


def entity_pairs(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """(gold type, predicted type) for every entity, entities read as conlleval reads them.

    A gold and a predicted entity are paired when their spans are exactly the same characters;
    the pair is then correct (same type) or a type confusion. A gold entity with no exactly
    matching predicted span is (type, MISSED); a predicted entity with none is (SPURIOUS, type).
    So a boundary error (overlap, not exact) counts as one MISSED plus one SPURIOUS, and the
    diagonal holds exactly the entities conlleval counts as correct.
    """
    pairs: list[tuple[str, str]] = []
    for g, p in zip(gold, predicted, strict=True):
        gold_at = {(s.start, s.end): s.type for s in spans(g)}
        pred_at = {(s.start, s.end): s.type for s in spans(p)}
        pairs += [(t, pred_at.get(bounds, MISSED)) for bounds, t in gold_at.items()]
        pairs += [(SPURIOUS, t) for bounds, t in pred_at.items() if bounds not in gold_at]
    return pairs


def plot_confusion(pairs: Sequence[tuple[str, str]], png: Path, data: Path, title: str) -> None:
    """Heat map with counts (rows gold, columns predicted); `data` has one row per entity pair."""
    _write_csv(data, ("actual", "predicted"), pairs)
    rows, cols = [*ENTITY_TYPES, SPURIOUS], [*ENTITY_TYPES, MISSED]
    counts = Counter(pairs)
    matrix = np.array([[counts[(r, c)] for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(9, 8))
    shown = np.log1p(matrix)  # log colour scale: the diagonal would otherwise wash out the errors
    ax.imshow(shown, cmap="Blues")
    for i, j in np.ndindex(matrix.shape):
        if matrix[i, j]:
            dark = shown[i, j] > shown.max() / 2
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted entity (MISSED: no predicted entity with exactly this span)")
    ax.set_ylabel("gold entity (SPURIOUS: no gold entity with exactly this span)")
    ax.set_title(title)
    _save(fig, png)


# --- learning curves -----------------------------------------------------------------------------


def read_dvclive_tsv(path: Path) -> tuple[list[float], list[float]]:
    """(steps, values) from a dvclive metric file: columns timestamp, step, <metric>."""
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows:
        return [], []
    value_key = [k for k in rows[0] if k not in ("timestamp", "step")][-1]
    return [float(r["step"]) for r in rows], [float(r[value_key]) for r in rows]


def collect_curves(train_reports: Path, slots: Sequence[str]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """metric name (path under plots/metrics, no suffix) -> slot -> (steps, values)."""
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for slot in slots:
        root = train_reports / slot / "plots" / "metrics"
        for tsv in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
            name = tsv.relative_to(root).with_suffix("").as_posix()
            curves.setdefault(name, {})[slot] = read_dvclive_tsv(tsv)
    return curves


def plot_learning_curves(train_reports: Path, slots: Sequence[str], png: Path) -> int:
    """One panel per logged metric, one line per slot; returns the number of panels drawn."""
    curves = collect_curves(train_reports, slots)
    n = max(len(curves), 1)
    ncols = min(n, CURVE_COLUMNS_PER_ROW)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (name, per_slot) in zip(axes.flat, sorted(curves.items())):
        for slot, (steps, values) in per_slot.items():
            ax.plot(steps, values, marker="o", markersize=3, label=slot)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    if not curves:
        axes.flat[0].text(0.5, 0.5, f"no dvclive metrics under {train_reports}", ha="center", va="center")
    _save(fig, png)
    return len(curves)


# --- diversity -----------------------------------------------------------------------------------


def plot_diversity(rows: Sequence[dict], members: Sequence[str], png: Path, title: str) -> None:
    """Two heatmaps over member pairs: disagreement (above) and error overlap (below the diagonal)."""
    n = len(members)
    grid = np.full((n, n), np.nan)
    for r in rows:
        i, j = members.index(r["a"]), members.index(r["b"])
        grid[min(i, j), max(i, j)] = r["disagreement"]
        grid[max(i, j), min(i, j)] = r["error_overlap"]
    fig, ax = plt.subplots(figsize=(1.4 * n + 2, 1.2 * n + 1.5))
    ax.imshow(np.nan_to_num(grid, nan=0.0), cmap="viridis", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="white", fontsize=9)
    ax.set_xticks(range(n), members)
    ax.set_yticks(range(n), members)
    ax.set_title(f"{title}\nabove the diagonal: disagreement; below: error overlap")
    _save(fig, png)
