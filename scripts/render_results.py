"""Write the results tables of README.md and docs/results.md from reports/ (never typed by hand).

Each table sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` markers; everything
outside the markers is left as it is. Run by `make run` after `dvc repro`, or alone:
    python scripts/render_results.py [--reports reports] [--check]
--check exits 1 when a document is not what the reports give (a stale table).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO / "README.md", REPO / "docs" / "results.md")
MEMBERS = {"bert": "BERT", "roberta": "RoBERTa", "electra": "ELECTRA", "albert": "ALBERT"}
# The paper's own numbers (Luo, Wang and Zhang 2022, Table 2: dev F1; section 3.5: test F1 of BERT)
PAPER_DEV = {"bert": 0.833, "roberta": 0.832, "electra": 0.822, "albert": 0.790}
PAPER_TEST = {"bert": 0.7768}
TYPES = ("BODY", "SYMP", "INST", "EXAM", "CHEM", "DISE", "DRUG", "SUPP", "TREAT", "TIME")


def _name(model: str) -> str:
    return f"{MEMBERS[model]}-BiLSTM-CRF" if model in MEMBERS else "shipped model (models/ensemble)"


def _paper(table: dict, model: str) -> str:
    return f"{table[model]:g}" if model in table else ""


def summary_table(metrics: dict) -> str:
    """Dev and test F1 per model beside the paper's."""
    lines = ["| model | dev F1 | test F1 | paper dev F1 | paper test F1 |", "| --- | ---: | ---: | ---: | ---: |"]
    for model in metrics["dev"]:
        dev, test = metrics["dev"][model]["f1"], metrics["test"][model]["f1"]
        lines.append(f"| {_name(model)} | {dev:.4f} | {test:.4f} | {_paper(PAPER_DEV, model)} | {_paper(PAPER_TEST, model)} |")
    return "\n".join(lines)


def scores_table(metrics: dict) -> str:
    """Entity precision, recall and F1 of every model on both splits."""
    lines = ["| model | dev P | dev R | dev F1 | test P | test R | test F1 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in metrics["dev"]:
        cells = [f"{metrics[s][model][k]:.4f}" for s in ("dev", "test") for k in ("precision", "recall", "f1")]
        lines.append(f"| {_name(model)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def per_type_table(metrics: dict) -> str:
    """Test F1 per entity type and model, with the gold support."""
    models = list(metrics["test"])
    any_model = metrics["test"][models[0]]["per_type"]
    header = "| type | support | " + " | ".join(_name(m).split("-")[0] for m in models) + " |"
    lines = [header, "| --- | ---: | " + " | ".join("---:" for _ in models) + " |"]
    for kind in TYPES:
        if kind in any_model:
            f1s = " | ".join(f"{metrics['test'][m]['per_type'][kind]['f1']:.3f}" for m in models)
            lines.append(f"| {kind} | {any_model[kind]['support']:,} | {f1s} |")
    return "\n".join(lines)


def table2(rows: list[dict]) -> str:
    """Every combination of members (the paper's Table 2), best on dev marked."""
    best = max(rows, key=lambda r: r["dev_f1"])
    lines = ["| members | dev F1 | test F1 | |", "| --- | ---: | ---: | --- |"]
    for row in rows:
        mark = "best on dev" if row is best else ""
        lines.append(f"| {row['model']} | {row['dev_f1']:.4f} | {row['test_f1']:.4f} | {mark} |")
    return "\n".join(lines)


def choice_line(combiners: dict) -> str:
    """What ships and why, as the stack stage decided it on dev."""
    chosen = combiners["selection"]["chosen"]
    members = " + ".join(MEMBERS.get(m, m) for m in chosen["members"])
    return f"**What ships:** {chosen['kind']} ({members}): {chosen['reason']}."


def combiners_table(combiners: dict) -> str:
    """Each candidate combiner against the best member alone, dev out-of-fold and test."""
    lines = ["| kind | members | dev F1 (mean of seeds) | dev spread | test F1 | ships |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for row in combiners["rows"]:
        members = " + ".join(MEMBERS.get(m, m) for m in row["members"])
        ships = "yes" if row["ships"] else ""
        lines.append(f"| {row['kind']} | {members} | {row['dev_f1']:.4f} | {row['dev_spread']:.4f} | {row['test_f1']:.4f} | {ships} |")
    return "\n".join(lines)


def diversity_table(pairs: list[dict]) -> str:
    """Per pair of members on dev: disagreement and error overlap."""
    lines = ["| members | disagreement | error overlap | missed-entity overlap |", "| --- | ---: | ---: | ---: |"]
    for r in pairs:
        names = f"{MEMBERS.get(r['a'], r['a'])} + {MEMBERS.get(r['b'], r['b'])}"
        lines.append(f"| {names} | {r['disagreement']:.4f} | {r['error_overlap']:.3f} | {r['missed_entity_overlap']:.3f} |")
    return "\n".join(lines)


def _read(reports: Path, name: str):
    return json.loads((reports / name).read_text(encoding="utf-8"))


def tables(reports: Path) -> dict[str, str]:
    metrics, combiners = _read(reports, "metrics.json"), _read(reports, "combiners.json")
    return {
        "summary": summary_table(metrics),
        "choice": choice_line(combiners),
        "scores": scores_table(metrics),
        "per-type": per_type_table(metrics),
        "table2": table2(_read(reports, "table2.json")),
        "combiners": combiners_table(combiners),
        "diversity": diversity_table(_read(reports, "diversity.json")),
    }


def render(text: str, generated: dict[str, str]) -> str:
    """`text` with each marked table replaced by its generated version."""
    for name, table in generated.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main(
    reports: Annotated[Path, typer.Option(help="the evaluate stage's reports folder")] = REPO / "reports",
    check: Annotated[bool, typer.Option(help="exit 1 if a document's tables are stale, write nothing")] = False,
) -> None:
    needed = ("metrics.json", "table2.json", "combiners.json", "diversity.json")
    missing = [reports / name for name in needed if not (reports / name).is_file()]
    if missing:
        typer.echo(f"{missing[0]}: not found; run `dvc repro` first", err=True)
        raise typer.Exit(1)
    generated = tables(reports)
    stale = []
    for document in DOCUMENTS:
        before = document.read_text(encoding="utf-8")
        after = render(before, generated)
        if after != before:
            stale.append(document.name)
            if not check:
                document.write_text(after, encoding="utf-8")
    verb = "stale" if check else "updated"
    typer.echo(f"results tables {verb}: {', '.join(stale) or 'none'}")
    if check and stale:
        sys.exit(1)


if __name__ == "__main__":
    typer.run(main)
