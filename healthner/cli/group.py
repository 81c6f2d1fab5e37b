"""The `healthner` command group: the Typer app, its one error handler and `--params`.

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
