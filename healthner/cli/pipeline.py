"""The pipeline's stages, one command each (the `Pipeline stages` panel of `healthner --help`):
the commands DVC's stages run, in the order the pipeline runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healthner.cli.group import PIPELINE, app, params_of
from healthner.sections.base import SLOTS


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


@app.command(rich_help_panel=PIPELINE)
def prepare(ctx: typer.Context) -> None:
    """Split the validated corpus into train/dev/test and tokenise it for each encoder slot."""
    from healthner.corpus.prepare import prepare as run

    typer.echo(run(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def unlabeled(ctx: typer.Context) -> None:
    """Raw health text (data.unlabeled_files; the warehouse's published articles if unlabeled.warehouse.enabled)
    -> deduplicated Traditional sentences, dev and test removed."""
    from healthner.corpus.unlabeled import build_unlabeled
    from healthner.nightly.published_text import published_texts

    params = params_of(ctx)
    typer.echo(build_unlabeled(params, published_texts(params.unlabeled.warehouse)))


@app.command(rich_help_panel=PIPELINE)
def teacher(ctx: typer.Context) -> None:
    """Combine the stack's members by teach.kind (default: their vote) into the teacher's folder (teach.teacher)."""
    from healthner.ensemble.teacher import build_teacher

    typer.echo(build_teacher(params_of(ctx)))


@app.command(rich_help_panel=PIPELINE)
def teach(ctx: typer.Context) -> None:
    """The teacher (teach.teacher) labels the unlabeled sentences: tags, probabilities, confidence (data/silver)."""
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


@app.command(rich_help_panel=PIPELINE)
def release(ctx: typer.Context) -> None:
    """Retrain what ships on every labeled sentence (settings fixed by the evaluated run) into models/release."""
    from healthner.ensemble.release import release as run

    typer.echo(run(params_of(ctx)))

