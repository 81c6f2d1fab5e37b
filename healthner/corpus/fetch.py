"""`healthner corpus fetch`: download every file the pipeline reads from disk, from commit-pinned sources.

Three folders are filled: the corpus (`data.files` into `data.corpus_dir`), the lexicon
(`data.lexicon_files` into `data.lexicon_dir`) and the unlabeled text (`data.unlabeled_files` into
`data.unlabeled_dir`), so a clean machine needs nothing but this command. Every enabled entry names
its `source` (a path under `fetch.base_url`) and the sha256 of the published file. A file is
streamed into a hidden temporary file beside its target, hashed on the way, and renamed into place
only when it is complete and its checksum matches, so a failed or cut-off download never leaves a
file that the pipeline would read. Files already present with the right checksum are skipped, so a
re-run only fetches what is missing or wrong.

Files without a pinned sha256 (optional extra sources that could not be downloaded when the pins
were made) rely on their commit-pinned URL; their sha256 is recorded on first fetch in
`fetch.lock_name` beside them and checked from then on. What is recorded must look like data: a body
under `fetch.min_bytes` or an HTML page (a portal's login or error page served with 200) is refused.

A hostile or broken server cannot hold the fetch or fill the disk: each file has an overall
deadline (`fetch.deadline_s`, however slowly the bytes arrive) and a size cap (`fetch.max_bytes`,
announced or received), and a disk error names the path it hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import requests
import urllib3
from tqdm import tqdm

from healthner.config import Params
from healthner.errors import HealthnerError
from healthner.io import json_text
from healthner.sections.corpus import FetchParams, PinnedFile

BASE_URL_ENV = "HEALTHNER_FETCH_BASE_URL"  # overrides fetch.base_url (tests, mirrors)
FILE_MODE = 0o644  # temporary files are created 0600; the corpus is meant to be readable by all
HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")  # what a data file never starts with


class FetchError(HealthnerError):
    """A download that cannot complete; the message is one line that names the file and the reason."""


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    sha256: str | None  # None: not pinned; checked against the lock file once recorded


@dataclass
class FolderReport:
    what: str  # corpus, lexicon, unlabeled
    directory: Path
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recorded: dict[str, str] = field(default_factory=dict)  # name -> sha256 recorded on first fetch

    def line(self) -> str:
        return f"{self.what} in {self.directory}: {len(self.fetched)} fetched, {len(self.skipped)} already present and valid"


@dataclass
class FetchReport:
    folders: list[FolderReport] = field(default_factory=list)

    def folder(self, what: str) -> FolderReport:
        return next(f for f in self.folders if f.what == what)

    @property
    def directory(self) -> Path:
        return self.folder("corpus").directory

    @property
    def fetched(self) -> list[str]:
        return [name for f in self.folders for name in f.fetched]

    @property
    def skipped(self) -> list[str]:
        return [name for f in self.folders for name in f.skipped]

    @property
    def recorded(self) -> dict[str, str]:
        return {name: digest for f in self.folders for name, digest in f.recorded.items()}

    def summary(self) -> str:
        lines = [f.line() for f in self.folders if f.fetched or f.skipped or f.what == "corpus"]
        lines += [f"{name}: sha256 {digest} recorded on first fetch" for name, digest in self.recorded.items()]
        return "\n".join(lines)


def sources(params: Params, base_url: str | None = None, entries: list[PinnedFile] | None = None) -> list[Source]:
    """The enabled files (default: the corpus's) with their full URLs; `base_url` overrides fetch.base_url."""
    base = (base_url or params.fetch.base_url).rstrip("/")
    return [_source(entry, base) for entry in (params.data.enabled_files if entries is None else entries)]


def _source(entry: PinnedFile, base: str) -> Source:
    if entry.source is None:
        raise FetchError(f"{entry.name}: no `source` in params.yaml data.files, so it cannot be fetched")
    return Source(entry.name, f"{base}/{entry.source.lstrip('/')}", entry.sha256)


def sha256_of(path: Path, chunk_bytes: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_lock(path: Path) -> dict[str, str]:
    """name -> sha256 recorded on earlier first fetches; empty when there is no lock file yet."""
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:
        raise FetchError(f"{path}: unreadable lock file ({error}); delete it to record the checksums again") from None


def write_lock(path: Path, recorded: dict[str, str]) -> None:
    text = json_text(dict(sorted(recorded.items())), ascii_only=True)
    with _temporary_beside(path) as (fh, tmp):
        fh.write(text.encode("utf-8"))
        _commit(fh, tmp, path)


def fetch_corpus(
    params: Params, directory: Path | None = None, base_url: str | None = None, progress: bool | None = None
) -> FetchReport:
    """Fetch every enabled file of the corpus, lexicon and unlabeled folders, verified.

    `directory` replaces data.corpus_dir (the other folders stay as configured). `base_url` defaults
    to $HEALTHNER_FETCH_BASE_URL, then fetch.base_url. `progress`: a tqdm bar per download (None:
    only on a terminal). Stops at the first file that cannot be fetched; the files fetched before it
    stay (they are complete and verified), so a re-run resumes.
    """
    base = base_url or os.environ.get(BASE_URL_ENV)
    report = FetchReport()
    with requests.Session() as session:
        for what, folder, entries in params.data.fetched_folders():
            folder = Path(directory) if what == "corpus" and directory is not None else folder
            todo = sources(params, base, entries)
            report.folders.append(fetch_folder(session, params.fetch, what, folder, todo, progress))
    return report


def fetch_folder(
    session: requests.Session, cfg: FetchParams, what: str, directory: Path, todo: list[Source], progress: bool | None
) -> FolderReport:
    """Fetch `todo` into `directory`: files already there with the right sha256 are skipped; the
    sha256 of unpinned files is recorded in the folder's lock file on their first fetch."""
    report = FolderReport(what, directory)
    lock_path = directory / cfg.lock_name
    lock = read_lock(lock_path) if todo else {}
    for source in todo:
        expected = source.sha256 or lock.get(source.name)
        target = directory / source.name
        if expected is not None and target.is_file() and sha256_of(target, cfg.chunk_bytes) == expected:
            report.skipped.append(source.name)
            continue
        _make_folder(directory, source.name)
        digest = download(session, source, target, expected, cfg, progress)
        report.fetched.append(source.name)
        if source.sha256 is None and lock.get(source.name) != digest:
            lock[source.name] = report.recorded[source.name] = digest
            write_lock(lock_path, lock)
    return report


def _make_folder(directory: Path, name: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"{name}: cannot create {directory}: {error.strerror}") from None


def download(
    session: requests.Session,
    source: Source,
    target: Path,
    expected: str | None,
    cfg: FetchParams,
    progress: bool | None = None,
) -> str:
    """Stream `source` into `target` atomically and return its sha256.

    Nothing is written at `target` unless every byte the server announced arrived within
    fetch.deadline_s and fetch.max_bytes and, when `expected` is given, the sha256 matches it (when
    it is not, the body must look like data: see `_check_looks_like_data`); the temporary file is
    removed on any failure.
    """
    deadline = time.monotonic() + cfg.deadline_s
    with _temporary_beside(target) as (fh, tmp), _get(session, source, cfg) as response:
        announced = _content_length(response)
        if announced is not None and announced > cfg.max_bytes:
            raise FetchError(f"{source.name}: the server announces {announced} bytes, over fetch.max_bytes "
                             f"({cfg.max_bytes}); nothing written")
        digest = hashlib.sha256()
        received = 0
        head = b""
        bar = tqdm(total=announced, unit="B", unit_scale=True, desc=source.name, disable=_quiet(progress))
        with bar:
            for chunk in _chunks(response, source, cfg, deadline):
                received += len(chunk)
                if received > cfg.max_bytes:
                    raise FetchError(f"{source.name}: more than fetch.max_bytes ({cfg.max_bytes}) bytes; nothing written")
                _write(fh, chunk, tmp)
                digest.update(chunk)
                head = head if len(head) >= cfg.chunk_bytes else head + chunk[: cfg.chunk_bytes]
                bar.update(len(chunk))
        if announced is not None and received != announced:
            raise FetchError(f"{source.name}: transfer cut off after {received} of {announced} bytes; nothing written")
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise FetchError(
                f"{source.name}: sha256 {got} is not the expected {expected} ({source.url}); nothing written"
            )
        if expected is None:
            _check_looks_like_data(source, response, head, received, cfg)
        _commit(fh, tmp, target)
    return got


def _check_looks_like_data(
    source: Source, response: requests.Response, head: bytes, size: int, cfg: FetchParams
) -> None:
    """An unpinned file is recorded as it arrives, so it must at least look like a data file: not
    under fetch.min_bytes, and not an HTML page (by Content-Type or by its first bytes)."""
    if size < cfg.min_bytes:
        raise FetchError(f"{source.name}: only {size} bytes (under fetch.min_bytes {cfg.min_bytes}): not the data "
                         f"file ({source.url}); nothing written or recorded")
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in {"text/html", "application/xhtml+xml"} or head.lstrip().lower().startswith(HTML_STARTS):
        raise FetchError(f"{source.name}: the server sent an HTML page, not the data file ({source.url}); "
                         "nothing written or recorded")


def _write(fh: IO[bytes], chunk: bytes, tmp: Path) -> None:
    """Append `chunk`; a full or failing disk is a FetchError naming the file."""
    try:
        fh.write(chunk)
    except OSError as error:
        raise FetchError(f"cannot write {tmp}: {error.strerror or error}; nothing written") from None


def _quiet(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None lets tqdm hide the bar when stderr is not a terminal."""
    return None if progress is None else not progress


def _get(session: requests.Session, source: Source, cfg: FetchParams) -> requests.Response:
    """The streamed response for `source`; offline and HTTP errors become one-line FetchErrors."""
    host = urlsplit(source.url).netloc
    try:
        response = session.get(source.url, stream=True, timeout=cfg.timeout_s)
    except requests.Timeout:
        raise FetchError(f"{source.name}: {host} did not answer within {cfg.timeout_s:g} s (offline?)") from None
    except requests.ConnectionError:
        raise FetchError(
            f"{source.name}: cannot connect to {host} (offline?); fetching the corpus needs internet access"
        ) from None
    except requests.RequestException as error:
        raise FetchError(f"{source.name}: {source.url}: {type(error).__name__}") from None
    if not response.ok:
        response.close()
        raise FetchError(f"{source.name}: {source.url} answered HTTP {response.status_code} {response.reason}")
    return response


def _content_length(response: requests.Response) -> int | None:
    """Bytes the server announced, when it did and sent the body unencoded (a compressed body's
    length is not the file's)."""
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit() or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    return int(length)


def _chunks(response: requests.Response, source: Source, cfg: FetchParams, deadline: float) -> Iterator[bytes]:
    """The body as it arrives (each read returns what one socket read gave, up to chunk_bytes, so a
    trickling server is seen between reads); past `deadline`, or a connection dropped mid-body, is a
    one-line FetchError."""
    raw = response.raw
    while True:
        try:
            chunk = raw.read1(cfg.chunk_bytes, decode_content=True)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise FetchError(f"{source.name}: transfer cut off ({type(error).__name__}); nothing written") from None
        if not chunk:
            return
        yield chunk
        if time.monotonic() > deadline:
            raise FetchError(f"{source.name}: not complete within fetch.deadline_s ({cfg.deadline_s:g} s); "
                             "nothing written")


@contextmanager
def _temporary_beside(target: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A hidden temporary file in `target`'s folder (so the final rename stays on one file system),
    removed on exit unless `_commit` renamed it into place."""
    try:
        fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on disk for the rename
            dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
        )
    except OSError as error:
        raise FetchError(f"{target.name}: cannot write into {target.parent}: {error.strerror}") from None
    tmp = Path(fh.name)
    try:
        with fh:
            yield fh, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _commit(fh: IO[bytes], tmp: Path, target: Path) -> None:
    """Flush `tmp` to disk and rename it over `target` in one step (readers see old or new, never half)."""
    try:
        fh.flush()
        os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except OSError as error:
        raise FetchError(f"cannot write {target}: {error.strerror or error}; nothing written") from None
