"""Label Studio JSON exports built in tests, in the documented shape of a project export
(labelstud.io/guide/task_format): a list of tasks, each with `id`, `data`, `annotations` (a person's
work) and `predictions` (pre-annotations), every region `{id, from_name, to_name, type: "labels",
value: {start, end, text, labels: [TYPE]}}`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from healthner.corpus.labels import Span

FROM_NAME, TO_NAME = "label", "text"  # <Labels name="label" toName="text"/> over <Text name="text" value="$text"/>


def region(span: Span, text: str, number: int) -> dict[str, Any]:
    return {
        "id": f"r{number}",
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "labels",
        "origin": "manual",
        "value": {"start": span.start, "end": span.end, "text": text[span.start : span.end], "labels": [span.type]},
    }


def annotation(text: str, found: list[Span], task_id: int, **fields: Any) -> dict[str, Any]:
    """One person's annotation of a task (Label Studio adds these bookkeeping fields on export)."""
    return {
        "id": 1000 + task_id,
        "completed_by": 1,
        "result": [region(span, text, i) for i, span in enumerate(found)],
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2026-12-01T10:00:00.000000Z",
        "updated_at": "2026-12-01T10:01:00.000000Z",
        "lead_time": 12.5,
        "task": task_id,
        **fields,
    }


def task(
    task_id: int,
    text: str,
    annotations: list[dict[str, Any]] | None,
    predicted: list[Span] | None = None,
    article_id: str | None = None,
) -> dict[str, Any]:
    """A task as exported: its data, the annotations (None: not reviewed) and the model's pre-annotation."""
    data = {"text": text, **({"article_id": article_id} if article_id else {})}
    found = {"id": task_id, "data": data, "annotations": annotations or [], "project": 1,
             "created_at": "2026-12-01T09:00:00.000000Z", "updated_at": "2026-12-01T10:01:00.000000Z"}
    if predicted is not None:
        found["predictions"] = [
            {"model_version": "healthner", "score": 0.9, "result": [region(s, text, i) for i, s in enumerate(predicted)]}
        ]
    return found


def write_export(path: Path, tasks: list[dict[str, Any]]) -> Path:
    """The export file as Label Studio writes it: one indented JSON array, UTF-8, characters unescaped
    (a lone surrogate, which UTF-8 cannot hold, written as its JSON escape)."""
    path.write_bytes(json.dumps(tasks, ensure_ascii=False, indent=2).encode("utf-8", "backslashreplace"))
    return path
