"""`healthner tag`'s output formats, each written chunk by chunk (memory stays flat in the input):

- `parquet`: one row per entity (the warehouse's entities schema), one row group per chunk;
- `jsonl`: the same rows, one JSON object a line;
- `conll`: `CHAR TAG` lines (BIO), a blank line after each line of an article, each article
  opened by a `# article_id = ID` comment line;
- `html`: a page a person reads, entities highlighted by type with type and score on hover, the
  way displaCy renders `manual=True` input (Jinja2 template `templates/tagged.html.j2`);
- `labelstudio`: Label Studio tasks with pre-annotations, `[{"data": {"text", "article_id"},
  "predictions": [{"model_version", "score", "result": [{"from_name": "label", "to_name": "text",
  "type": "labels", "value": {"start", "end", "text", "labels": [TYPE]}, "score"}]}]}, ...]`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import jinja2
import pyarrow as pa
import pyarrow.parquet as pq

from healthner.corpus.labels import ENTITY_TYPES
from healthner.io import json_line
from healthner.nightly.inbox import Article, Reject
from healthner.nightly.tagger import Entity
from healthner.nightly.warehouse import ENTITIES_SCHEMA, REJECTS_SCHEMA

FORMATS = ("parquet", "jsonl", "conll", "html", "labelstudio")
SUFFIX_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".conll": "conll", ".html": "html", ".htm": "html",
                  ".json": "labelstudio"}
RUN_KEY = b"healthner.run"  # Parquet metadata: the same value in a tag run's entities and rejects files
LABEL_STUDIO_FROM, LABEL_STUDIO_TO = "label", "text"  # the names in docs/operations.md's labeling config
CONLL_ID_PREFIX = "# article_id = "
TEMPLATE = "tagged.html.j2"

Tagged = tuple[Article, list[Entity]]


def format_for(output: Path, chosen: str | None) -> str:
    """`chosen`, else the output's suffix decides (.html, .json = labelstudio, ...), else parquet."""
    return chosen or SUFFIX_FORMATS.get(output.suffix.lower(), "parquet")


def entity_rows(article_id: str, entities: Sequence[Entity], model_version: str) -> list[dict]:
    return [
        {"article_id": article_id, "type": e.type, "text": e.text, "start": e.start, "end": e.end,
         "score": e.score, "model_version": model_version}
        for e in entities
    ]


class EntityWriter(ABC):
    """One output file, written chunk by chunk; `close` finishes it (footer, Parquet metadata)."""

    def __init__(self, path: Path, model_version: str, run: bytes) -> None:
        self.path, self.model_version, self.run = path, model_version, run

    @abstractmethod
    def write(self, tagged: Sequence[Tagged]) -> None:
        """Append each (article, its entities) of one chunk."""

    @abstractmethod
    def close(self) -> None:
        """Finish the file."""


class ParquetEntities(EntityWriter):
    def __init__(self, path: Path, model_version: str, run: bytes) -> None:
        super().__init__(path, model_version, run)
        self.writer = pq.ParquetWriter(path, ENTITIES_SCHEMA.with_metadata({RUN_KEY: run}))

    def write(self, tagged: Sequence[Tagged]) -> None:
        rows = [row for article, found in tagged for row in entity_rows(article.article_id, found, self.model_version)]
        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.writer.schema))

    def close(self) -> None:
        self.writer.close()


class TextEntities(EntityWriter):
    """A UTF-8 text output: `opening` and `closing` around what each chunk adds."""

    opening = closing = ""

    def __init__(self, path: Path, model_version: str, run: bytes) -> None:
        super().__init__(path, model_version, run)
        self.fh: IO[str] = path.open("w", encoding="utf-8", newline="")
        self.fh.write(self.opening)

    def close(self) -> None:
        self.fh.write(self.closing)
        self.fh.close()


class JsonlEntities(TextEntities):
    def write(self, tagged: Sequence[Tagged]) -> None:
        for article, found in tagged:
            self.fh.writelines(json_line(row) for row in entity_rows(article.article_id, found, self.model_version))


def bio_tags(length: int, entities: Sequence[Entity]) -> list[str]:
    tags = ["O"] * length
    for entity in entities:
        tags[entity.start : entity.end] = [f"B-{entity.type}"] + [f"I-{entity.type}"] * (entity.end - entity.start - 1)
    return tags


class ConllEntities(TextEntities):
    def write(self, tagged: Sequence[Tagged]) -> None:
        for article, found in tagged:
            self.fh.write(f"{CONLL_ID_PREFIX}{article.article_id}\n")
            tags = bio_tags(len(article.text), found)
            start = 0
            for line in article.text.split("\n"):
                pairs = [(char, tags[start + i]) for i, char in enumerate(line) if char != "\r"]
                if line.strip():
                    self.fh.writelines(f"{char} {tag}\n" for char, tag in pairs)
                    self.fh.write("\n")
                start += len(line) + 1


def segments(text: str, entities: Sequence[Entity]) -> list[tuple[str, Entity | None]]:
    """The text cut into plain runs and entities, in order (what the template highlights)."""
    parts, at = [], 0
    for entity in sorted(entities, key=lambda e: e.start):
        if entity.start > at:
            parts.append((text[at : entity.start], None))
        parts.append((text[entity.start : entity.end], entity))
        at = entity.end
    if at < len(text):
        parts.append((text[at:], None))
    return parts


def html_template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("healthner.nightly", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE)


class HtmlEntities(TextEntities):
    def __init__(self, path: Path, model_version: str, run: bytes) -> None:
        self.page = html_template().module
        self.opening = str(self.page.page_head(model_version, ENTITY_TYPES))
        self.closing = str(self.page.page_foot())
        super().__init__(path, model_version, run)

    def write(self, tagged: Sequence[Tagged]) -> None:
        for article, found in tagged:
            self.fh.write(str(self.page.article(article.article_id, segments(article.text, found))))


class LabelStudioEntities(TextEntities):
    opening, closing = "[", "\n]\n"

    def __init__(self, path: Path, model_version: str, run: bytes) -> None:
        super().__init__(path, model_version, run)
        self.tasks = 0

    def write(self, tagged: Sequence[Tagged]) -> None:
        for article, found in tagged:
            self.fh.write(("\n" if self.tasks == 0 else ",\n") + json.dumps(self.task(article, found), ensure_ascii=False))
            self.tasks += 1

    def task(self, article: Article, found: Sequence[Entity]) -> dict:
        """One article as a Label Studio task with the model's entities as its prediction."""
        result = [
            {"id": f"e{number}", "from_name": LABEL_STUDIO_FROM, "to_name": LABEL_STUDIO_TO, "type": "labels",
             "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.type]}, "score": e.score}
            for number, e in enumerate(found)
        ]
        prediction = {"model_version": self.model_version, "result": result}
        if found:
            prediction["score"] = sum(e.score for e in found) / len(found)
        return {"data": {"text": article.text, "article_id": article.article_id}, "predictions": [prediction]}


WRITERS: dict[str, type[EntityWriter]] = {"parquet": ParquetEntities, "jsonl": JsonlEntities, "conll": ConllEntities,
                                          "html": HtmlEntities, "labelstudio": LabelStudioEntities}


class RejectsWriter:
    """The rejects Parquet file (with the run id), written in batches of `batch_rows`."""

    def __init__(self, path: Path, run: bytes, batch_rows: int) -> None:
        self.writer = pq.ParquetWriter(path, REJECTS_SCHEMA.with_metadata({RUN_KEY: run}))
        self.batch_rows, self.pending, self.count = batch_rows, [], 0

    def add(self, reject: Reject) -> None:
        self.pending.append(reject._asdict())
        self.count += 1
        if len(self.pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_pylist(self.pending, schema=self.writer.schema))
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.writer.close()
