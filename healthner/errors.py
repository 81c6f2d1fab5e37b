"""Anticipated failures: the errors a user can cause and fix (a missing file, a bad param, a tampered
model, a bad query). The CLI prints them as one line on stderr and exits 1; anything else is a bug
and keeps its traceback. Every layer may import this module (like healthner.config and healthner.sections).
"""

from __future__ import annotations


class HealthnerError(Exception):
    """Base of every anticipated error; its message is what the user reads, on one line. `details` holds the
    findings behind it, one line each (e.g. every defect as FILE:LINE), which the CLI prints above that line."""

    details: tuple[str, ...] = ()


class ConfigError(HealthnerError, ValueError):
    """params.yaml (or an override) does not validate; the message names the file and the field."""


class ModelIntegrityError(HealthnerError, ValueError):
    """A model folder that is not what was saved: changed files, an edited manifest, members outside
    the folder, a forest that does not fit its inputs, or types skops does not trust."""


class InputFormatError(HealthnerError, ValueError):
    """An input file the command cannot read at all (not a line of it: lines become rejects)."""


class UnknownName(HealthnerError, KeyError):
    """A slot, ablation row or split the configuration does not know (a KeyError, printed plainly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
