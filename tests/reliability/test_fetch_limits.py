"""`healthner corpus fetch` against hostile servers: a trickle, an endless body, an error page served
with 200 for an unpinned file, and a full disk. Each ends in one line naming the file, within the
configured limits (fetch.deadline_s, fetch.max_bytes, fetch.min_bytes), and leaves nothing behind."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.fetch import FetchError, fetch_corpus

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
BLOCK = b"x" * 65536
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>" + b" " * 4096 + b"</body></html>"


class _Hostile(BaseHTTPRequestHandler):
    """/trickle: one byte every 0.2 s of an announced 10,000; /endless: 64 KiB blocks until the client
    leaves; /huge: announces 10 GiB; /html: an HTML page with 200; /tiny: `nope`; /big: 1 MiB of data."""

    def do_GET(self) -> None:
        try:
            getattr(self, "_" + self.path.strip("/").split("/")[-1])()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _head(self, length: int | None, kind: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _trickle(self) -> None:
        self._head(10_000)
        for _ in range(10_000):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.2)

    def _endless(self) -> None:
        self._head(None)
        while True:
            self.wfile.write(BLOCK)

    def _huge(self) -> None:
        self._head(10 << 30)
        self.wfile.write(BLOCK)

    def _html(self) -> None:
        self._head(len(HTML_PAGE), "text/html; charset=utf-8")
        self.wfile.write(HTML_PAGE)

    def _tiny(self) -> None:
        self._head(4, "text/plain")
        self.wfile.write(b"nope")

    def _big(self) -> None:
        self._head(16 * len(BLOCK))
        for _ in range(16):
            self.wfile.write(BLOCK)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _one_file(server: str, path: str, sha256: str | None = None, **fetch: object) -> Params:
    """params fetching one unpinned (or pinned) corpus file from `path` on the hostile server."""
    entry = {"name": "data.jsonl", "format": "healthner_jsonl", "source": path, "sha256": sha256}
    return PARAMS.with_updates(fetch={"base_url": server, "timeout_s": 5, **fetch},
                               data={"files": [entry], "lexicon_files": [], "unlabeled_files": []})


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_trickling_server_is_cut_at_the_deadline(server: str, tmp_path: Path) -> None:
    params = _one_file(server, "trickle", deadline_s=1.5)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^data\.jsonl: not complete within fetch\.deadline_s \(1\.5 s\)"):
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert time.monotonic() - started < 1.5 + 5  # the deadline, plus at most one read's timeout
    assert _left(tmp_path / "corpus") == []


def test_an_endless_body_stops_at_the_size_cap(server: str, tmp_path: Path) -> None:
    params = _one_file(server, "endless", max_bytes=1 << 20)
    with pytest.raises(FetchError, match=r"^data\.jsonl: more than fetch\.max_bytes \(1048576\) bytes; nothing written"):
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert _left(tmp_path / "corpus") == []


def test_an_announced_size_over_the_cap_is_refused_before_reading(server: str, tmp_path: Path) -> None:
    params = _one_file(server, "huge", max_bytes=1 << 20)
    with pytest.raises(FetchError, match=r"^data\.jsonl: the server announces 10737418240 bytes, over fetch\.max_bytes"):
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert _left(tmp_path / "corpus") == []


@pytest.mark.parametrize(("path", "message"), [("html", "the server sent an HTML page"), ("tiny", "only 4 bytes")])
def test_an_unpinned_file_is_never_recorded_from_an_error_body(server: str, tmp_path: Path, path: str, message: str) -> None:
    params = _one_file(server, path)
    with pytest.raises(FetchError, match=rf"^data\.jsonl: {message}.*nothing written or recorded$"):
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert _left(tmp_path / "corpus") == []  # no file, no lock entry pinning it


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real ENOSPC (needs root, as mount does)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          check=False, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_path(server: str, full_disk: Path, tmp_path: Path) -> None:
    params = _one_file(server, "big")
    target = full_disk / "corpus"
    with pytest.raises(FetchError, match=rf"^cannot write {target}/\.data\.jsonl\..*\.part: No space left on device"):
        fetch_corpus(params, target, progress=False)
    assert _left(target) == []

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    result = CliRunner().invoke(app, ["corpus", "fetch", str(target), "--params", str(params_file)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1 and "No space left on device" in result.stderr
