"""A Label Studio JSON export as labeled sentences: a reviewer's corrections become training data.

The export (Label Studio's "JSON" format) is one JSON array of tasks. Each task is read as one
sentence record: its text is `data.text` (the labeling config's `<Text value="$text"/>`), its
entities are the `labels` regions of one annotation, `value: {start, end, text, labels: [TYPE]}`,
with `start`/`end` counting Unicode characters (code points), end exclusive. Character offsets
become character-level BIO tags; a long text is cut into windows by `prepare`, like a long sentence.

What is read, and why:
- Only `annotations` are labels. `predictions` (a model's pre-annotations) are never read: training
  on them would teach the model its own mistakes.
- The annotation read is the one marked `ground_truth`, else the last one not cancelled (the
  latest review); a task with several is read but warned about.
- A region of another type (choices, relations, text areas) carries no entity: ignored, warned.

Skipped and counted (severity "rejected", one per task, so counts in and out reconcile): a task
with no annotation (not reviewed yet), a task whose every annotation was cancelled (the reviewer
skipped it), a task with an empty text.

Hard defects (the task is not read, the stage fails), because each means the labels would be
wrong, not merely missing: a file that is not a JSON array of objects, a task without a
`data.text` string, a span outside the text or empty, a `value.text` that differs from
text[start:end] (offsets in another unit, e.g. UTF-16, or a text edited after labeling), a region
with no label, several labels or a label outside the tag set, and two spans sharing a character
(character-level BIO cannot hold nested or overlapping entities). Each defect names the file, the
line where its task starts, and the task's position and id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

from healthner.corpus.labels import ENTITY_TYPES, Span, span_tags
from healthner.corpus.readers import Defect, ReadResult, Sentence, Severity, first_surrogate, json_error, read_raw

TEXT_KEY = "text"  # data.text: the value of the labeling config's <Text> tag
REGION_TYPE = "labels"  # the result type of a <Labels> span over a <Text>
JSON_SPACE = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()


class _Reader:
    """One export on its way into sentences; `add` records a defect at the current task's line."""

    def __init__(self, path: Path, genre: str) -> None:
        self.path, self.genre, self.result = path, genre, ReadResult()
        self.line, self.where = 0, ""

    def add(self, check: str, message: str, severity: Severity = "error") -> None:
        self.result.defects.append(Defect(str(self.path), self.line, check, f"{self.where}: {message}", severity))

    def read(self, text: str) -> None:
        for line, number, task in self.tasks(text):
            self.result.sentences_seen += 1
            self.line, self.where = line, f"task {number}" + (f" (id {task['id']})" if _has_id(task) else "")
            sentence = self.sentence(task, number)
            if sentence is not None:
                self.result.sentences.append(sentence)

    def tasks(self, text: str) -> Iterator[tuple[int, int, Any]]:
        """(line, position, task) for each element of the top-level array, decoded one at a time so
        that each task's line is known; a syntax error is a defect at its line and ends the file."""
        pos = JSON_SPACE.match(text).end()
        if not text.startswith("[", pos):
            self.file_defect(text, pos, "json_invalid", "a Label Studio JSON export is one JSON array of tasks")
            return
        pos = JSON_SPACE.match(text, pos + 1).end()
        if text.startswith("]", pos):
            self.file_defect(text, pos, "file_empty", "the export holds no task")
            return
        line, counted, number = 1, 0, 0
        while True:
            line, counted = line + text.count("\n", counted, pos), pos
            try:
                task, end = DECODER.raw_decode(text, pos)
            except (RecursionError, ValueError) as exc:
                self.file_defect(text, pos, "json_invalid", f"invalid JSON: {json_error(exc)}")
                return
            number += 1
            yield line, number, task
            pos = JSON_SPACE.match(text, end).end()
            if text.startswith("]", pos):
                after = JSON_SPACE.match(text, pos + 1).end()
                if after < len(text):
                    self.file_defect(text, after, "json_invalid", "text after the array of tasks")
                return
            if not text.startswith(",", pos):
                self.file_defect(text, pos, "json_invalid", "expected ',' or ']' after a task")
                return
            pos = JSON_SPACE.match(text, pos + 1).end()

    def file_defect(self, text: str, pos: int, check: str, message: str) -> None:
        line = text.count("\n", 0, pos) + 1
        self.result.defects.append(Defect(str(self.path), line, check, message, "error"))

    def sentence(self, task: Any, number: int) -> Sentence | None:
        """The task's text and the BIO tags of its chosen annotation, or None after a defect."""
        data = task.get("data") if isinstance(task, dict) else None
        text = data.get(TEXT_KEY) if isinstance(data, dict) else None
        if not isinstance(text, str):
            self.add("field_count", f"no data.{TEXT_KEY} string (a task is an object with data: {{{TEXT_KEY}: ...}})")
            return None
        at = first_surrogate(text)
        if at is not None:
            self.add("invalid_text", f"lone surrogate U+{ord(text[at]):04X} in data.{TEXT_KEY} (not storable as UTF-8)")
            return None
        if not text:
            self.add("empty_sentence", "empty text", "rejected")
            return None
        annotation = self.chosen_annotation(task.get("annotations"))
        found = None if annotation is None else self.spans(annotation, text)
        if found is None:
            return None
        sent_id = f"{self.path.stem}:{task['id'] if _has_id(task) else number}"
        return Sentence(sent_id, self.path.name, self.genre, self.line, list(text), span_tags(found, len(text)))

    def chosen_annotation(self, annotations: Any) -> dict | None:
        """The ground-truth annotation, else the last one not cancelled; None after a defect."""
        if not annotations:
            self.add("unreviewed_task", "no annotation (not reviewed; predictions are never read as labels)", "rejected")
            return None
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            self.add("field_type", "'annotations' must be a list of objects")
            return None
        usable = [a for a in annotations if not a.get("was_cancelled")]
        if not usable:
            self.add("cancelled_task", "every annotation was cancelled (skipped by the reviewer)", "rejected")
            return None
        chosen = next((a for a in usable if a.get("ground_truth")), usable[-1])
        if len(usable) > 1:
            which = "the ground-truth one" if chosen.get("ground_truth") else "the last one"
            self.add("several_annotations", f"{len(usable)} annotations not cancelled: {which} is read", "warning")
        return chosen

    def spans(self, annotation: dict, text: str) -> list[Span] | None:
        """The entities of one annotation, or None when any region is a hard defect."""
        regions = annotation.get("result", [])
        if not isinstance(regions, list) or not all(isinstance(r, dict) for r in regions):
            self.add("field_type", "an annotation's 'result' must be a list of objects")
            return None
        found, ok = [], True
        for index, region in enumerate(regions, start=1):
            name = f"region {index}" + (f" (id {region['id']})" if "id" in region else "")
            if region.get("type") != REGION_TYPE:
                why = f"{name} of type {region.get('type')!r} ignored (entities are {REGION_TYPE!r})"
                self.add("ignored_region", why, "warning")
                continue
            span, problem = region_span(region.get("value"), text)
            if problem is not None:
                self.add(problem[0], f"{name}: {problem[1]}")
                ok = False
            else:
                found.append(span)
        clash = first_overlap(found) if ok else None
        if clash is not None:
            self.add(
                "overlapping_spans", f"spans {clash[0]} and {clash[1]} share characters (BIO holds one entity per character)"
            )
            ok = False
        return found if ok else None


def _has_id(task: Any) -> bool:
    return isinstance(task, dict) and isinstance(task.get("id"), (str, int)) and not isinstance(task.get("id"), bool)


def _describe(span: Span) -> str:
    return f"{span.type} [{span.start}, {span.end})"


def region_span(value: Any, text: str) -> tuple[Span | None, tuple[str, str] | None]:
    """(the span, None), or (None, (check, why)) for a region's `value` over `text`."""
    if not isinstance(value, dict):
        return None, ("field_type", "no 'value' object")
    start, end = value.get("start"), value.get("end")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        return None, ("field_type", f"'start' and 'end' must be integers, got {start!r} and {end!r}")
    if not 0 <= start < end <= len(text):
        return None, (
            "span_outside_text", f"span [{start}, {end}) is empty or outside the text (0 to {len(text)} characters)"
        )
    if "text" in value and value["text"] != text[start:end]:
        return None, (
            "span_text_mismatch",
            f"value.text {value['text']!r} is not text[{start}:{end}] {text[start:end]!r} (offsets must count characters)",
        )
    labels = value.get("labels")
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        return None, ("label_count", f"a span needs exactly one label, got {labels!r}")
    if labels[0] not in ENTITY_TYPES:
        return None, ("unknown_label", f"unknown label {labels[0]!r} (known: {' '.join(ENTITY_TYPES)})")
    return Span(labels[0], start, end), None


def first_overlap(found: list[Span]) -> tuple[str, str] | None:
    """The first two spans (by start) that share a character, described, or None."""
    ordered = sorted(found, key=lambda s: (s.start, s.end))
    for before, after in pairwise(ordered):
        if after.start < before.end:
            return _describe(before), _describe(after)
    return None


def read_labelstudio_json(path: Path, genre: str) -> ReadResult:
    """A Label Studio JSON export: one sentence per reviewed task, every sentence of genre `genre`."""
    reader = _Reader(path, genre)
    raw = read_raw(path, reader.result)
    if raw is None:
        return reader.result
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        defect = Defect(str(path), line, "invalid_utf8", f"invalid UTF-8 bytes at byte {exc.start + 1}", "error")
        reader.result.defects.append(defect)
        return reader.result
    reader.read(text)
    return reader.result
