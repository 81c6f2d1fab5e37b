"""`python -m benchmarks [--params params.yaml]`: time tagging, training, memory and a night;
write BENCHMARKS.md and reports/bench.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from benchmarks.bench import run_benchmarks, summary
from healthner.config import load_params


def main(params: Annotated[Path, typer.Option("--params", help="params file")] = Path("params.yaml")) -> None:
    cfg = load_params(params)
    typer.echo(summary(run_benchmarks(cfg), cfg.bench))


if __name__ == "__main__":
    typer.run(main)
