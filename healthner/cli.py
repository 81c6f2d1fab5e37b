"""The `healthner` command: a thin Typer layer, one command per pipeline step.

Each command loads params.yaml into the typed config and calls the one function of its step's
module; DVC stages and Airflow tasks call the same functions. Heavy imports stay inside commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from healthner.config import SLOTS, load_params

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Healthcare NER for Traditional Chinese: one command per pipeline step."
)
ParamsOpt = Annotated[Path, typer.Option("--params", help="params file")]
corpus_app = typer.Typer(no_args_is_help=True, help="The corpus files: fetch them from their pinned public sources.")
app.add_typer(corpus_app, name="corpus")


@app.command()
def validate(
    params: ParamsOpt = Path("params.yaml"),
    corpus_dir: Annotated[Optional[Path], typer.Option(help="validate this folder instead of data.corpus_dir")] = None,
) -> None:
    """Check the corpus (GX suite + BIO checks); exit 1 and print FILE:LINE on a hard defect."""
    from healthner.corpus.validate import ValidationFailed
    from healthner.corpus.validate import validate as run

    cfg = load_params(params)
    try:
        report = run(cfg, corpus_dir=corpus_dir)
    except ValidationFailed as failure:
        for defect in failure.defects:
            typer.echo(str(defect), err=True)
        typer.echo(f"validation failed: {len(failure.defects)} hard defect(s)", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.summary())


@corpus_app.command("fetch")
def corpus_fetch(
    directory: Annotated[
        Optional[Path], typer.Argument(metavar="[DIR]", help="target folder (default: data.corpus_dir)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    base_url: Annotated[
        Optional[str], typer.Option(envvar="HEALTHNER_FETCH_BASE_URL", help="override fetch.base_url (a mirror)")
    ] = None,
) -> None:
    """Download every enabled data.files entry, verified by sha256; files already valid are skipped."""
    from healthner.corpus.fetch import FetchError, fetch_corpus

    try:
        report = fetch_corpus(load_params(params), directory, base_url=base_url)
    except (FetchError, FileNotFoundError) as error:
        typer.echo(f"corpus fetch: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(report.summary())


@app.command()
def prepare(params: ParamsOpt = Path("params.yaml")) -> None:
    """Split the validated corpus into train/dev/test and tokenise it for each encoder slot."""
    from healthner.corpus.prepare import prepare as run

    typer.echo(run(load_params(params)))


@app.command()
def lexicon(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build the typed medical term list (Traditional) from THUOCL, pycmekg and CC-CEDICT."""
    from healthner.corpus.lexicon import build_lexicon

    typer.echo(build_lexicon(load_params(params)))


@app.command()
def train(
    slot: Annotated[str, typer.Argument(help=f"encoder slot: {', '.join(SLOTS)}")],
    params: ParamsOpt = Path("params.yaml"),
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="override one param, e.g. model.use_lac=false (repeatable)")
    ] = None,
) -> None:
    """Train one encoder slot (encoder -> BiLSTM -> CRF) and save its best checkpoint."""
    from healthner.config import parse_overrides
    from healthner.model.train import train as run

    typer.echo(run(load_params(params).with_updates(**parse_overrides(set_ or [])), slot))


@app.command()
def stack(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit the random-forest stacker on the base models' dev-split marginals."""
    from healthner.ensemble.stack import fit_stack

    typer.echo(fit_stack(load_params(params)))


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Score every base model and the stack (conlleval-exact); write metrics, tables and plots."""
    from healthner.ensemble.evaluate import evaluate as run
    from healthner.ensemble.evaluate import metrics_summary

    typer.echo(metrics_summary(run(load_params(params))))


@app.command("score")
def score_model(
    model: Annotated[Path, typer.Argument(help="a trained slot folder (models/<slot>)")],
    split: Annotated[str, typer.Option(help="dev or test")] = "dev",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Entity P/R/F1 (conlleval-exact) of one trained slot on a prepared split."""
    from healthner.ensemble.evaluate import score_model as run

    result = run(load_params(params), model, split)
    typer.echo(f"{model} {split}: P {result['precision']:.4f} R {result['recall']:.4f} F1 {result['f1']:.4f}")


@app.command()
def ablate(
    row: Annotated[Optional[list[str]], typer.Option("--row", help="only these rows (repeatable)")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """The paper's Table 3 on one slot: train each params.yaml ablation row, write dev F1 per row."""
    from healthner.ensemble.ablate import ablate as run
    from healthner.ensemble.ablate import table3_markdown

    cfg = load_params(params)
    typer.echo(table3_markdown(run(cfg, row), cfg.ablation.slot, cfg.ablation.epochs))


@app.command()
def tag(
    input: Annotated[Path, typer.Option("--input", help="JSON lines or Parquet with article_id, text")],
    output: Annotated[Path, typer.Option("--output", help="Parquet file, one row per entity")],
    model: Annotated[
        Optional[Path], typer.Option("--model", help="shipped model folder (default: models/release, else models/ensemble)")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (default: tag.device)")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="auto, torch or onnx (default: tag.runtime)")] = None,
) -> None:
    """Tag articles; rejects go to a sibling `rejects` Parquet file with their reasons."""
    from healthner.nightly.batch import tag_file

    cfg = load_params(params)
    chosen = {key: value for key, value in (("device", device), ("runtime", runtime)) if value is not None}
    cfg = cfg.with_updates(tag=chosen) if chosen else cfg
    typer.echo(tag_file(cfg, model or cfg.nightly.tagging_model(), input, output))


@app.command()
def release(params: ParamsOpt = Path("params.yaml")) -> None:
    """Retrain what ships on every labeled sentence (settings fixed by the evaluated run) into models/release."""
    from healthner.ensemble.release import release as run

    typer.echo(run(load_params(params)))


@app.command("export-onnx")
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


@app.command("sample-night")
def sample_night(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build a sample inbox for one night from the held-out test split."""
    from healthner.nightly.batch import build_sample_inbox

    typer.echo(build_sample_inbox(load_params(params)))


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the views entities, articles, rejects")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Run SQL (DuckDB) over the warehouse's published Parquet tables."""
    from healthner.nightly.query import run_query

    typer.echo(run_query(load_params(params).nightly.warehouse_dir, sql))


if __name__ == "__main__":
    app()
