"""Reading a day's inbox: JSON lines of articles, every unusable line a reject with its reason.

A bad line never stops the night: it becomes a Reject naming `file:line` and a reason code, so
that lines read = articles accepted + lines rejected (blank lines are not records). Whatever the
line holds (bad bytes, nesting too deep for the decoder, a number too long for Python's int, a
lone surrogate that Parquet cannot store) is caught here, line by line. Lines end with LF (an
optional CR before it is dropped); a file without any LF but with CRs (old Mac) is cut at CR.
Every file found under a day's folder, subfolders included, is read: a `.jsonl` file (any case)
line by line, anything else as one rejected record, so nothing in the folder goes uncounted.
Files are read through fsspec, so a local folder and an s3:// URL work alike.

Article ids: a JSON string or integer, taken as text with surrounding whitespace stripped, so
`1`, `"1"` and `" 1 "` are one id; other types, blank ids and ids over
`nightly.max_article_id_chars` characters are rejects.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from healthner.corpus.readers import first_surrogate, loads_line
from healthner.nightly.warehouse import ARTICLE_META, open_root
from healthner.sections.tagging import NightlyParams

log = logging.getLogger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
INBOX_SUFFIX = ".jsonl"  # compared case-insensitively
DAY_PREFIX = "dt="

# reject reasons (the `reason` column of the rejects dataset)
EMPTY_TEXT = "empty_text"
MISSING_TEXT = "missing_text"
INVALID_JSON = "invalid_json"
MISSING_ID = "missing_article_id"
INVALID_ID = "invalid_article_id"
DUPLICATE_ID = "duplicate_article_id"
INVALID_UTF8 = "invalid_utf8"
INVALID_TEXT = "invalid_text"  # a lone surrogate (e.g. "\\ud800") in a kept field: not storable as UTF-8
TOO_LONG = "text_too_long"
NOT_JSONL = "not_jsonl"  # a file in the day's folder that is not *.jsonl: one reject for the whole file
UNREADABLE_FILE = "unreadable_file"
REASONS = (EMPTY_TEXT, MISSING_TEXT, INVALID_JSON, MISSING_ID, INVALID_ID, DUPLICATE_ID, INVALID_UTF8, INVALID_TEXT,
           TOO_LONG, NOT_JSONL, UNREADABLE_FILE)


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


MAX_ID_CHARS = NightlyParams().max_article_id_chars
MAX_TEXT_CHARS = NightlyParams().max_article_chars


def safe_text(value: str) -> str:
    """`value` with anything UTF-8 cannot hold (lone surrogates) escaped, for rejects' own columns."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _article_id(record: dict, max_chars: int) -> tuple[str | None, str, str]:
    """(id, reason, detail): the id as stripped text when usable, else None with the reject reason."""
    value = record.get("article_id")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, MISSING_ID, "no article_id"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, INVALID_ID, f"article_id must be a JSON string or integer, got {type(value).__name__}"
    text = str(value).strip()
    if len(text) > max_chars:
        return None, INVALID_ID, f"article_id of {len(text)} characters > {max_chars}"
    at = first_surrogate(text)
    if at is not None:
        return None, INVALID_TEXT, f"lone surrogate U+{ord(text[at]):04X} in article_id"
    return text, "", ""


def _meta(record: dict) -> dict[str, str | None]:
    return {key: None if record.get(key) is None else str(record[key]) for key in ARTICLE_META}


def _surrogate_field(fields: dict[str, str | None]) -> str | None:
    """'field: where' of the first kept field holding a lone surrogate, or None."""
    for name, value in fields.items():
        at = None if value is None else first_surrogate(value)
        if at is not None:
            return f"lone surrogate U+{ord(value[at]):04X} at character {at + 1} of {name}"
    return None


def check_record(
    record: Any, location: str, max_chars: int, accepted: set[str], max_id_chars: int = MAX_ID_CHARS
) -> Article | Reject:
    """One parsed record -> an Article, or a Reject with the first reason that applies.
    A repeated article_id is a duplicate only of an accepted article (the first one is kept)."""
    if not isinstance(record, dict):
        return Reject(None, location, INVALID_JSON, f"expected a JSON object, got {type(record).__name__}")
    article_id, reason, detail = _article_id(record, max_id_chars)
    if article_id is None:
        return Reject(None, location, reason, detail)
    text = record.get("text")
    if not isinstance(text, str):
        return Reject(article_id, location, MISSING_TEXT, "no text string")
    if not text.strip():
        return Reject(article_id, location, EMPTY_TEXT, "text is empty or whitespace")
    if len(text) > max_chars:
        return Reject(article_id, location, TOO_LONG, f"{len(text)} characters > {max_chars}")
    try:
        meta = _meta(record)
    except RecursionError:  # a metadata value nested just within the decoder's limit but not str()'s
        return Reject(article_id, location, INVALID_JSON, "a metadata field is nested too deeply")
    bad = _surrogate_field({"text": text, **meta})
    if bad:
        return Reject(article_id, location, INVALID_TEXT, bad)
    if article_id in accepted:
        return Reject(article_id, location, DUPLICATE_ID, "article_id already seen today")
    accepted.add(article_id)
    return Article(article_id, text, location, **meta)


def _loads(text: str, location: str) -> Any | Reject:
    """json.loads, every way it can fail on one line (readers.loads_line) an invalid_json reject."""
    value, error = loads_line(text)
    return value if error is None else Reject(None, location, INVALID_JSON, error)


def _salvaged_id(raw: bytes, max_id_chars: int) -> str | None:
    """The article_id of a line with bad bytes, when the rest of it still parses."""
    salvaged = _loads(raw.decode("utf-8", errors="replace"), "")
    if not isinstance(salvaged, dict):
        return None
    return _article_id(salvaged, max_id_chars)[0]


def _parse_line(raw: bytes, location: str, max_id_chars: int = MAX_ID_CHARS) -> Any | Reject:
    """Decode and parse one line; a Reject names bad bytes (with the id if it can be salvaged)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"invalid UTF-8 at byte {exc.start + 1}"
        return Reject(_salvaged_id(raw, max_id_chars), location, INVALID_UTF8, detail)
    return _loads(text, location)


def split_lines(raw: bytes) -> list[bytes]:
    """Lines of a file's bytes: cut at LF (one CR before it dropped), or at CR in a file without LF."""
    if b"\n" not in raw and b"\r" in raw:
        return raw.split(b"\r")
    return [line.removesuffix(b"\r") for line in raw.split(b"\n")]


def read_inbox_lines(
    raw: bytes, name: str, max_chars: int, accepted: set[str] | None = None, max_id_chars: int = MAX_ID_CHARS
) -> InboxRead:
    """Articles and rejects of one JSON-lines file's bytes; `accepted` carries ids across a day's files."""
    accepted = set() if accepted is None else accepted
    name = safe_text(name)
    raw = raw.removeprefix(UTF8_BOM)
    result = InboxRead([], [], 0)
    for number, line in enumerate(split_lines(raw), start=1):
        if not line.strip():
            continue
        result.lines_read += 1
        outcome = line_outcome(line, f"{name}:{number}", max_chars, accepted, max_id_chars)
        (result.rejects if isinstance(outcome, Reject) else result.articles).append(outcome)
    return result


def line_outcome(
    line: bytes, location: str, max_chars: int, accepted: set[str], max_id_chars: int = MAX_ID_CHARS
) -> Article | Reject:
    """One non-blank JSON line (without its line ending) -> an Article, or a Reject with its reason."""
    parsed = _parse_line(line, location, max_id_chars)
    return parsed if isinstance(parsed, Reject) else check_record(parsed, location, max_chars, accepted, max_id_chars)


def whole_file_reject(name: str, reason: str, detail: str) -> InboxRead:
    """A file that cannot be read as JSON lines: one record read, rejected (location `name:0`)."""
    return InboxRead([], [Reject(None, f"{safe_text(name)}:0", reason, detail)], 1)


def location_name(path: str) -> str:
    """A file's name in locations: its path below the day's `dt=...` folder (subfolders show), else its name."""
    parts = path.split("/")
    days = [i for i, part in enumerate(parts) if part.startswith(DAY_PREFIX)]
    return "/".join(parts[days[-1] + 1 :]) if days and days[-1] < len(parts) - 1 else parts[-1]


def read_inbox(
    path_or_url: str,
    max_article_chars: int = MAX_TEXT_CHARS,
    accepted: set[str] | None = None,
    max_id_chars: int = MAX_ID_CHARS,
) -> InboxRead:
    """One file of a day: JSON lines if its name ends in .jsonl (any case), else one `not_jsonl` reject."""
    fs, path = open_root(str(path_or_url))
    name = location_name(path)
    if not path.lower().endswith(INBOX_SUFFIX):
        return whole_file_reject(name, NOT_JSONL, f"not a {INBOX_SUFFIX} file; not read")
    try:
        with fs.open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return whole_file_reject(name, UNREADABLE_FILE, safe_text(f"{type(exc).__name__}: {exc}"))
    return read_inbox_lines(raw, name, max_article_chars, accepted, max_id_chars)


def read_inbox_file(
    path_or_url: str,
    max_article_chars: int = MAX_TEXT_CHARS,
    accepted: set[str] | None = None,
    max_id_chars: int = MAX_ID_CHARS,
) -> tuple[list[Article], list[Reject]]:
    """(articles, rejects) of one inbox file (local path or fsspec URL)."""
    result = read_inbox(path_or_url, max_article_chars, accepted, max_id_chars)
    return result.articles, result.rejects


def day_files(inbox: str, dt: str) -> list[str]:
    """Every file under `<inbox>/dt=<dt>/`, subfolders included, sorted, as URLs fsspec can open.
    Not only *.jsonl: what cannot be read becomes a reject (read_inbox), so nothing goes uncounted."""
    fs, root = open_root(inbox)
    day = f"{root}/{DAY_PREFIX}{dt}"
    found = sorted(fs.find(day)) if fs.isdir(day) else []
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    log.info("inbox %s/%s%s: %d file(s)", inbox, DAY_PREFIX, dt, len(found))
    return [path if protocol in ("file", "local") else f"{protocol}://{path}" for path in found]
