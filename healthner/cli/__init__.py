"""The `healthner` command: a thin Typer layer, one command per pipeline step.

Each command loads params.yaml into the typed config and calls the one function of its step's
module; DVC stages and Airflow tasks call the same functions. Heavy imports stay inside commands.
`healthner --help` groups the commands in three panels, one module each: pipeline stages
(`pipeline`), tagging and warehouse (`warehouse`), tools (`tools`). `group` holds the app itself,
its one error handler and the `--params` option every command shares.
"""

from __future__ import annotations

from healthner.cli.group import PIPELINE, TOOLS, WAREHOUSE, OneLineErrors, app, hoist_params, params_of

# Importing a panel's module registers its commands on the app; --help shows the panels in this order.
from healthner.cli import pipeline, warehouse, tools  # noqa: F401  # isort: skip

__all__ = ["PIPELINE", "TOOLS", "WAREHOUSE", "OneLineErrors", "app", "hoist_params", "params_of"]
