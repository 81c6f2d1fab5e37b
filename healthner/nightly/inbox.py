"""Reading a day's inbox: JSON lines of articles, every unusable line a reject with its reason.

A bad line never stops the night: it becomes a Reject naming `file:line` and a reason code, so
that lines read = articles accepted + lines rejected (blank lines are not records). Files are read
through fsspec, so a local folder and an s3:// URL work alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from healthner.config import NightlyParams
from healthner.nightly.warehouse import ARTICLE_META, open_root

UTF8_BOM = b"\xef\xbb\xbf"
INBOX_PATTERN = "*.jsonl"

# reject reasons (the `reason` column of the rejects dataset)
EMPTY_TEXT = "empty_text"
MISSING_TEXT = "missing_text"
INVALID_JSON = "invalid_json"
MISSING_ID = "missing_article_id"
DUPLICATE_ID = "duplicate_article_id"
INVALID_UTF8 = "invalid_utf8"
TOO_LONG = "text_too_long"


@dataclass(frozen=True)
class Article:
    article_id: str
    text: str
    location: str  # file:line it came from
    title: str | None = None
    source: str | None = None
    url: str | None = None
    published_at: str | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


class Reject(NamedTuple):
    article_id: str | None
    location: str  # file:line
    reason: str  # one of the reason codes above
    detail: str = ""


@dataclass
class InboxRead:
    articles: list[Article]
    rejects: list[Reject]
    lines_read: int  # non-blank lines: always len(articles) + len(rejects)


def _article_id(record: dict) -> str | None:
    value = record.get("article_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return None
    return str(value)


def _meta(record: dict) -> dict[str, str | None]:
    return {key: None if record.get(key) is None else str(record[key]) for key in ARTICLE_META}


def check_record(record: Any, location: str, max_chars: int, accepted: set[str]) -> Article | Reject:
    """One parsed record -> an Article, or a Reject with the first reason that applies.
    A repeated article_id is a duplicate only of an accepted article (the first one is kept)."""
    if not isinstance(record, dict):
        return Reject(None, location, INVALID_JSON, f"expected a JSON object, got {type(record).__name__}")
    article_id = _article_id(record)
    if article_id is None:
        return Reject(None, location, MISSING_ID, "no usable article_id")
    text = record.get("text")
    if not isinstance(text, str):
        return Reject(article_id, location, MISSING_TEXT, "no text string")
    if not text.strip():
        return Reject(article_id, location, EMPTY_TEXT, "text is empty or whitespace")
    if len(text) > max_chars:
        return Reject(article_id, location, TOO_LONG, f"{len(text)} characters > {max_chars}")
    if article_id in accepted:
        return Reject(article_id, location, DUPLICATE_ID, "article_id already seen today")
    accepted.add(article_id)
    return Article(article_id, text, location, **_meta(record))


def _parse_line(raw: bytes, location: str) -> Any | Reject:
    """Decode and parse one line; a Reject names bad bytes (with the id if it can be salvaged)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        try:
            salvaged = json.loads(raw.decode("utf-8", errors="replace"))
            article_id = _article_id(salvaged) if isinstance(salvaged, dict) else None
        except json.JSONDecodeError:
            article_id = None
        return Reject(article_id, location, INVALID_UTF8, f"invalid UTF-8 at byte {exc.start + 1}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return Reject(None, location, INVALID_JSON, f"{exc.msg} at column {exc.colno}")


def read_inbox_lines(
    raw: bytes, name: str, max_chars: int, accepted: set[str] | None = None
) -> InboxRead:
    """Articles and rejects of one JSON-lines file's bytes; `accepted` carries ids across a day's files."""
    accepted = set() if accepted is None else accepted
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    result = InboxRead([], [], 0)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        result.lines_read += 1
        location = f"{name}:{number}"
        parsed = _parse_line(line, location)
        outcome = parsed if isinstance(parsed, Reject) else check_record(parsed, location, max_chars, accepted)
        (result.rejects if isinstance(outcome, Reject) else result.articles).append(outcome)
    return result


def read_inbox(
    path_or_url: str, max_article_chars: int = NightlyParams().max_article_chars, accepted: set[str] | None = None
) -> InboxRead:
    fs, path = open_root(str(path_or_url))
    with fs.open(path, "rb") as fh:
        raw = fh.read()
    return read_inbox_lines(raw, path.rsplit("/", 1)[-1], max_article_chars, accepted)


def read_inbox_file(
    path_or_url: str, max_article_chars: int = NightlyParams().max_article_chars, accepted: set[str] | None = None
) -> tuple[list[Article], list[Reject]]:
    """(articles, rejects) of one inbox file (local path or fsspec URL)."""
    result = read_inbox(path_or_url, max_article_chars, accepted)
    return result.articles, result.rejects


def day_files(inbox: str, dt: str) -> list[str]:
    """The day's inbox files (`<inbox>/dt=<dt>/*.jsonl`), sorted, as URLs fsspec can open."""
    fs, root = open_root(inbox)
    found = sorted(fs.glob(f"{root}/dt={dt}/{INBOX_PATTERN}"))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [path if protocol in ("file", "local") else f"{protocol}://{path}" for path in found]
