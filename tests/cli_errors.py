"""The shape every anticipated CLI error has: exit 1 and one line `error: ...`, never a traceback."""

from __future__ import annotations


def one_line_error(result, *says: str) -> str:
    """The one error line of a CliRunner result, which must hold every text in `says`."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(text in lines[0] for text in says), lines[0]
    assert "Traceback" not in result.output
    return lines[0]
