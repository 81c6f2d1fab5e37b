"""Tagging articles and the warehouse the nightly DAG fills (the `Tagging and warehouse` panel):
`tag`, `sample-night`, `query` and the `warehouse` group's upkeep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healthner.cli.group import WAREHOUSE, app, params_of

warehouse_app = typer.Typer(no_args_is_help=True, help="The warehouse's Delta tables: vacuum, compaction, migration.")
app.add_typer(warehouse_app, name="warehouse", rich_help_panel=WAREHOUSE)


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
        Path | None,
        typer.Option("--model", help="shipped model folder (default: nightly.model_dir, else nightly.fallback_model_dir)"),
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
