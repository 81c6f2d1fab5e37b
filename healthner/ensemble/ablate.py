"""ablate: the paper's Table 3 on one slot, each row a params override trained by the real train step.

Rows come from params.yaml `ablation.rows` ({section: {field: value}}, merged deeply into the
defaults), so a row is re-run by editing config alone. Every row trains `ablation.slot` for
`ablation.epochs` into its own folder and keeps its best epoch on dev entity F1; that kept model is
then scored once on test, for the table only (no row, epoch or setting is chosen on it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from healthner.config import Params
from healthner.errors import UnknownName
from healthner.io import write_json
from healthner.model.scoring import score_model
from healthner.model.train import TrainResult, train


@dataclass(frozen=True)
class AblationRow:
    name: str
    dev_f1: float
    test_f1: float
    seconds: float
    epochs_run: int

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.name, "dev_f1": self.dev_f1, "test_f1": self.test_f1, "seconds": self.seconds,
                "epochs_run": self.epochs_run}


def folder_name(row: str) -> str:
    """A row name as a folder name: 'BiLSTM+CRF+focal' -> 'bilstm-crf-focal'."""
    return re.sub(r"[^a-z0-9]+", "-", row.lower()).strip("-")


def row_params(params: Params, row: str) -> Params:
    """The params one row trains with: its overrides, the ablation's epochs and its own output folders."""
    cfg = params.ablation
    if row not in cfg.rows:
        raise UnknownName(f"unknown ablation row {row!r}; params.yaml ablation.rows has {sorted(cfg.rows)}")
    return params.with_updates(**cfg.rows[row]).with_updates(train={
        "epochs": cfg.epochs,
        "output_dir": str(cfg.output_dir / folder_name(row)),
        "reports_dir": str(cfg.reports_dir / folder_name(row)),
    })


def table3_markdown(rows: list[AblationRow], slot: str, epochs: int) -> str:
    lines = [
        f"# Table 3: each strategy on {slot}, dev entity F1",
        "",
        f"Each row trains `{slot}` for at most {epochs} epochs with its params overrides (params.yaml",
        "`ablation.rows`); best dev F1 over epochs, conlleval-exact, and that epoch's model scored once on test.",
        "",
        "| row | dev F1 | test F1 | train seconds | epochs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r.name} | {r.dev_f1:.4f} | {r.test_f1:.4f} | {r.seconds:.0f} | {r.epochs_run} |" for r in rows]
    return "\n".join(lines) + "\n"


def ablate(params: Params, only: list[str] | None = None) -> list[AblationRow]:
    """Train every asked-for row (all by default); write table3.md and table3.json."""
    cfg = params.ablation
    names = only or list(cfg.rows)
    rows = []
    for name in names:
        trained = row_params(params, name)
        result: TrainResult = train(trained, cfg.slot)
        test_f1 = score_model(trained, result.model_dir, "test")["f1"]
        rows.append(AblationRow(name, result.best_dev_f1, test_f1, result.seconds, result.epochs_run))
    cfg.reports_dir.mkdir(parents=True, exist_ok=True)
    (cfg.reports_dir / "table3.md").write_text(table3_markdown(rows, cfg.slot, cfg.epochs), encoding="utf-8")
    write_json(cfg.reports_dir / "table3.json", [r.as_dict() for r in rows], ascii_only=True)
    return rows
