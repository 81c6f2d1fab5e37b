"""Write the results tables of README.md and docs/results.md from reports/ (never typed by hand).

Each table sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` markers; everything
outside the markers is left as it is. Run by `make run` after `dvc repro`, or alone:
    python scripts/render_results.py [--reports reports] [--profile NAME=DIR ...] [--check]
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
TABLE3 = "ablation/table3.json"  # make ablate's rows, when it has been run
TEACH, STUDENT = "teach.json", "student.json"  # the teach and student stages' reports, when they have run
TYPES = ("BODY", "SYMP", "INST", "EXAM", "CHEM", "DISE", "DRUG", "SUPP", "TREAT", "TIME")


def _name(model: str) -> str:
    return f"{MEMBERS[model]}-BiLSTM-CRF" if model in MEMBERS else "the stack's choice (models/ensemble)"


def _paper(table: dict, model: str) -> str:
    return f"{table[model]:g}" if model in table else ""


def summary_table(metrics: dict, taught: dict | None = None, student: dict | None = None) -> str:
    """Dev and test F1 per model beside the paper's; the teacher and the student when they ran."""
    lines = ["| model | dev F1 | test F1 | paper dev F1 | paper test F1 |", "| --- | ---: | ---: | ---: | ---: |"]
    for model in metrics["dev"]:
        dev, test = metrics["dev"][model]["f1"], metrics["test"][model]["f1"]
        lines.append(
            f"| {_name(model)} | {dev:.4f} | {test:.4f} | {_paper(PAPER_DEV, model)} | {_paper(PAPER_TEST, model)} |"
        )
    lines += [f"| {name} | {dev:.4f} | {_scored(test)} |  |  |" for name, dev, test in teacher_student_rows(taught, student)]
    return "\n".join(lines)


def _scored(f1: float | None) -> str:
    return "not scored" if f1 is None else f"{f1:.4f}"


def teacher_dev_f1(taught: dict) -> float:
    """The teacher's entity F1 on every dev sentence (the report's threshold 0)."""
    return min(taught["dev_thresholds"], key=lambda row: row["threshold"])["f1"]


def _student_slot(student: dict) -> str:
    slot = Path(next(iter(student["seeds"].values()))["model_dir"]).name  # models/student/seed-N/<slot>
    return MEMBERS.get(slot, slot)


def teacher_student_rows(taught: dict | None, student: dict | None) -> list[tuple[str, float, float | None]]:
    """(name, dev F1, test F1) of the teacher (on every dev sentence) and of the student (mean of its seeds),
    those that ran. Test F1 only for a student that ships (scored once, after the choice); else None."""
    rows = []
    if taught is not None:
        teacher = taught["teacher"]
        members = " + ".join(MEMBERS.get(m, m) for m in teacher["members"])
        rows.append((f"teacher: {teacher['kind']} ({members})", teacher_dev_f1(taught), None))
    if student is not None:
        seeds = len(student["seeds"])
        name = (f"student: {_student_slot(student)} slot, gold + {student['silver']['sentences']:,} silver sentences "
                f"(mean of {seeds} seed{'s' if seeds > 1 else ''})")
        rows.append((name, student["mean_dev_f1"], (student.get("test") or {}).get("f1")))
    return rows


def teacher_table(taught: dict) -> str:
    """The teacher's dev F1 on the dev sentences at or above each confidence threshold (choosing teach.min_confidence)."""
    lines = ["| teacher confidence at least | dev sentences | share | teacher dev F1 |", "| ---: | ---: | ---: | ---: |"]
    for row in sorted(taught["dev_thresholds"], key=lambda r: r["threshold"]):
        lines.append(f"| {row['threshold']:g} | {row['sentences']:,} | {row['share']:.1%} | {row['f1']:.4f} |")
    return "\n".join(lines)


def student_table(student: dict) -> str:
    """Each student seed's dev F1, their mean, and what the shipping rule chose with the student among the candidates."""
    lines = ["| student seed | dev F1 | best epoch |", "| --- | ---: | ---: |"]
    for seed, run in student["seeds"].items():
        lines.append(f"| {seed} | {run['dev_f1']:.4f} | {run['best_epoch']} |")
    lines.append(f"| mean | {student['mean_dev_f1']:.4f} | |")
    chosen = student["chosen"]
    ships = f"{chosen['kind']} ({' + '.join(MEMBERS.get(m, m) for m in chosen['members'])})"
    return "\n".join(lines) + f"\n\n**What ships with the student as a candidate:** {ships}: {chosen['reason']}."


def scores_table(metrics: dict) -> str:
    """Entity precision, recall and F1 of every model on both splits."""
    lines = [
        "| model | dev P | dev R | dev F1 | test P | test R | test F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
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


def table2(rows: list[dict], taught: dict | None = None, student: dict | None = None) -> str:
    """Every combination of members (the paper's Table 2), best on dev marked; then the teacher and the
    student (dev only) when they ran."""
    best = max(rows, key=lambda r: r["dev_f1"])
    lines = ["| members | dev F1 | test F1 | |", "| --- | ---: | ---: | --- |"]
    for row in rows:
        mark = "best on dev" if row is best else ""
        lines.append(f"| {row['model']} | {row['dev_f1']:.4f} | {row['test_f1']:.4f} | {mark} |")
    lines += [f"| {name} | {dev:.4f} | {_scored(test)} | |" for name, dev, test in teacher_student_rows(taught, student)]
    return "\n".join(lines)


def choice_line(combiners: dict, student: dict | None = None) -> str:
    """What ships and why, decided on dev: by the student stage's rule when it ran (the student among the
    candidates), else by the stack stage's."""
    chosen = (student or combiners["selection"])["chosen"]
    return f"**What ships:** {_ships(chosen)}: {chosen['reason']}."


def combiners_table(combiners: dict) -> str:
    """Each candidate combiner against the best member alone, dev out-of-fold and test."""
    lines = [
        "| kind | members | dev F1 (mean of seeds) | dev spread | test F1 | ships |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in combiners["rows"]:
        members = " + ".join(MEMBERS.get(m, m) for m in row["members"])
        ships = "yes" if row["ships"] else ""
        lines.append(
            f"| {row['kind']} | {members} | {row['dev_f1']:.4f} | {row['dev_spread']:.4f} | {row['test_f1']:.4f} | {ships} |"
        )
    return "\n".join(lines)


def diversity_table(pairs: list[dict]) -> str:
    """Per pair of members on dev: disagreement and error overlap."""
    lines = ["| members | disagreement | error overlap | missed-entity overlap |", "| --- | ---: | ---: | ---: |"]
    for r in pairs:
        names = f"{MEMBERS.get(r['a'], r['a'])} + {MEMBERS.get(r['b'], r['b'])}"
        lines.append(f"| {names} | {r['disagreement']:.4f} | {r['error_overlap']:.3f} | {r['missed_entity_overlap']:.3f} |")
    return "\n".join(lines)


# The paper's Table 3 (dev F1, pretrained BERT), row for row with params.yaml's ablation.rows
PAPER_TABLE3 = {"softmax+CE": 0.799, "softmax+focal": 0.805, "BiLSTM+focal": 0.812, "BiLSTM+CRF+focal": 0.825,
                "BiLSTM+CRF+R-Drop+focal": 0.833}


def table3(rows: list[dict]) -> str:
    """`make ablate`'s rows (reports/ablation/table3.json) beside the paper's Table 3."""
    lines = ["| row | dev F1 | test F1 | train s | epochs | paper, dev F1 |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        paper = PAPER_TABLE3.get(r["row"])
        lines.append(f"| {r['row']} | {r['dev_f1']:.4f} | {r['test_f1']:.4f} | {r['seconds']:.0f} | {r['epochs_run']} | "
                     f"{'' if paper is None else f'{paper:g}'} |")
    return "\n".join(lines)


def crossfit_combiners_table(default: dict, crossfit: dict) -> str:
    """Each candidate fit on dev alone (out-of-fold on dev) beside the same fit on the members'
    cross-fitted train outputs (scored on dev, which it never saw), and test F1 of both."""
    alone = {row["kind"]: row for row in default["rows"]}
    lines = [("| kind | dev F1, fit on dev | dev F1, fit on cross-fitted train | test F1, fit on dev "
              "| test F1, fit on cross-fitted train + dev |"),
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in crossfit["rows"]:
        before = alone.get(row["kind"])
        cells = ("", "") if before is None else (f"{before['dev_f1']:.4f}", f"{before['test_f1']:.4f}")
        lines.append(f"| {row['kind']} | {cells[0]} | {row['dev_f1']:.4f} | {cells[1]} | {row['test_f1']:.4f} |")
    return "\n".join(lines)


def crossfit_members_table(record: dict) -> str:
    """Each fold member's dev F1 against its full member's, and the step's time."""
    lines = ["| member | full member dev F1 | fold members' dev F1: mean (min - max) | fold trainings, seconds |",
             "| --- | ---: | --- | ---: |"]
    for slot, full in record["full_dev_f1"].items():
        runs = [m for m in record["members"] if m["slot"] == slot]
        f1s = [m["dev_f1"] for m in runs]
        full_cell = "" if full is None else f"{full:.4f}"
        lines.append(f"| {MEMBERS.get(slot, slot)} | {full_cell} "
                     f"| {sum(f1s) / len(f1s):.4f} ({min(f1s):.4f} - {max(f1s):.4f}) | "
                     f"{sum(m['seconds'] for m in runs):,.0f} |")
    lines.append(f"| all, {record['folds']} folds | | | {record['seconds']:,.0f} |")
    return "\n".join(lines)


def crossfit_tables(reports: Path, crossfit_reports: Path) -> dict[str, str]:
    """The cross-fitting profile's run (`crossfit_reports`) against the default run (`reports`)."""
    combiners = _read(crossfit_reports, "combiners.json")
    return {
        "crossfit-choice": choice_line(combiners),
        "crossfit-combiners": crossfit_combiners_table(_read(reports, "combiners.json"), combiners),
        "crossfit-members": crossfit_members_table(_read(crossfit_reports, "crossfit.json")),
    }


def _pair(metrics: dict, model: str) -> str:
    return f"{metrics['dev'][model]['f1']:.4f} / {metrics['test'][model]['f1']:.4f}" if model in metrics["dev"] else ""


def profiles_table(reports: Path, profiles: dict[str, Path]) -> str:
    """What each profile's evaluated run ships, and every member, beside the default run: dev / test F1."""
    lines = ["| profile | what ships | shipped: dev / test F1 | " + " | ".join(MEMBERS.values()) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in MEMBERS) + " |"]
    for name, folder in {"default (params.yaml)": reports, **{f"configs/{k}.yaml": v for k, v in profiles.items()}}.items():
        metrics, ships = _read(folder, "metrics.json"), _ships(_read(folder, "combiners.json")["selection"]["chosen"])
        members = " | ".join(_pair(metrics, m) for m in MEMBERS)
        lines.append(f"| {name} | {ships} | {_pair(metrics, 'shipped')} | {members} |")
    return "\n".join(lines)


def profile_table(reports: Path, profile: Path) -> str:
    """Every member alone, every candidate combiner and the shipped model in a profile's run beside
    the default run's: dev / test F1 (combiners' dev F1 as the stack scores them: out-of-fold)."""
    rows: dict[str, list[str]] = {}
    for column, folder in enumerate((reports, profile)):
        metrics, combiners = _read(folder, "metrics.json"), _read(folder, "combiners.json")
        for model, name in MEMBERS.items():
            if model in metrics["dev"]:
                rows.setdefault(f"{name} alone", ["", ""])[column] = _pair(metrics, model)
        for row in (r for r in combiners["rows"] if r["kind"] != "member"):  # a member alone is above
            cell = f"{row['dev_f1']:.4f} / {row['test_f1']:.4f}"
            rows.setdefault(f"{row['kind']} of {len(row['members'])}", ["", ""])[column] = cell
        ships = _ships(combiners["selection"]["chosen"])
        rows.setdefault("what ships", ["", ""])[column] = f"{ships}: {_pair(metrics, 'shipped')}"
    lines = ["| model | default: dev / test F1 | this profile: dev / test F1 |", "| --- | --- | --- |"]
    lines += [f"| {name} | {cells[0]} | {cells[1]} |" for name, cells in rows.items()]
    return "\n".join(lines)


def _ships(chosen: dict) -> str:
    return f"{chosen['kind']} ({' + '.join(MEMBERS.get(m, m) for m in chosen['members'])})"


def _read(reports: Path, name: str):
    return json.loads((reports / name).read_text(encoding="utf-8"))


def _read_if_there(reports: Path, name: str):
    return _read(reports, name) if (reports / name).is_file() else None


def tables(reports: Path) -> dict[str, str]:
    metrics, combiners = _read(reports, "metrics.json"), _read(reports, "combiners.json")
    taught, student = _read_if_there(reports, TEACH), _read_if_there(reports, STUDENT)
    generated = {
        "summary": summary_table(metrics, taught, student),
        "choice": choice_line(combiners, student),
        "scores": scores_table(metrics),
        "per-type": per_type_table(metrics),
        "table2": table2(_read(reports, "table2.json"), taught, student),
        "combiners": combiners_table(combiners),
        "diversity": diversity_table(_read(reports, "diversity.json")),
    }
    if (reports / TABLE3).is_file():
        generated["table3"] = table3(_read(reports, TABLE3))
    if taught is not None:
        generated["teacher"] = teacher_table(taught)
    if student is not None:
        generated["student"] = student_table(student)
    return generated


def render(text: str, generated: dict[str, str]) -> str:
    """`text` with each marked table replaced by its generated version."""
    for name, table in generated.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.DOTALL)
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    return text


def main(
    reports: Annotated[Path, typer.Option(help="the evaluate stage's reports folder")] = REPO / "reports",
    check: Annotated[bool, typer.Option(help="exit 1 if a document's tables are stale, write nothing")] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(help="NAME=DIR: the reports of a configs/NAME.yaml run, set beside the default (repeatable); "
                          "crossfit=DIR also writes the cross-fitting tables, monpa=DIR the monpa table"),
    ] = None,
) -> None:
    needed = ("metrics.json", "table2.json", "combiners.json", "diversity.json")
    missing = [reports / name for name in needed if not (reports / name).is_file()]
    if missing:
        typer.echo(f"{missing[0]}: not found; run `dvc repro` first", err=True)
        raise typer.Exit(1)
    generated = tables(reports)
    profiles = dict(entry.split("=", 1) for entry in profile or [])
    if profiles:
        generated["profiles"] = profiles_table(reports, {name: Path(folder) for name, folder in profiles.items()})
    if "crossfit" in profiles:
        generated |= crossfit_tables(reports, Path(profiles["crossfit"]))
    if "monpa" in profiles:
        generated["monpa"] = profile_table(reports, Path(profiles["monpa"]))
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
