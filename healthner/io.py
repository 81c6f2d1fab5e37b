"""JSON as the package writes it: one owner for the format of every JSON file and JSON line.

The house format is UTF-8 text, indented by 2, characters kept as they are (not `\\u` escapes), keys in
the order given, a final newline: readable in a diff and by a person. A file that has always been
written otherwise keeps its bytes, through the options below, because DVC and the warehouse compare
files by digest and a reformat would mark every output changed. Usable by every layer (like config
and errors): it imports nothing from healthner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def json_text(
    value: Any,
    *,
    indent: int | None = 2,
    ascii_only: bool = False,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    final_newline: bool = True,
) -> str:
    """`value` as JSON text in the house format; the options are the exceptions a file keeps (see above)."""
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only, sort_keys=sort_keys, default=default)
    return text + "\n" if final_newline else text


def write_json(path: Path, value: Any, **format: Any) -> Path:
    """Write `value` to `path` as `json_text(value, **format)` in UTF-8, creating its folder; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(value, **format), encoding="utf-8")
    return path


def json_line(value: Any) -> str:
    """One record of a JSON-lines file: compact, characters as they are, a newline at its end."""
    return json.dumps(value, ensure_ascii=False) + "\n"
