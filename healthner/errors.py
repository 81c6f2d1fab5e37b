"""The base of every error the package anticipates (a missing file, an empty warehouse, a failed
check): the CLI prints such an error as one line and exits non-zero; anything else is a bug."""

from __future__ import annotations


class HealthnerError(Exception):
    """An anticipated failure whose message tells the user what to do; never a bug."""
