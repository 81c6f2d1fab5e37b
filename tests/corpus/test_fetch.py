"""`healthner corpus fetch` against a local HTTP server: the published files under their pinned paths.

The server (the standard library's http.server on 127.0.0.1) serves copies of the shared corpus
files, made in a temporary folder at test time, under each entry's `source` path; the fetch's base
URL points at it, so no test needs the internet.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import Params, load_params
from healthner.corpus.fetch import FetchError, fetch_corpus
from healthner.corpus.validate import configured_files
from tests.http_site import QuietHandler, serving

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")
SHARED = REPO / PARAMS.data.corpus_dir
CUT_SHORT = "cut-short/"  # paths under this prefix announce more bytes than they send, then close
EXTRA = "healthner_extra.jsonl"  # an unpinned optional source


class _Handler(QuietHandler):
    """Serves files; under CUT_SHORT announces a larger Content-Length than it sends and hangs up."""

    def do_GET(self) -> None:
        if not self.path.lstrip("/").startswith(CUT_SHORT):
            return super().do_GET()
        body = Path(self.translate_path(self.path.replace(CUT_SHORT, "", 1))).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A web root holding copies of the shared files under their pinned `source` paths."""
    root = tmp_path_factory.mktemp("site")
    for entry in PARAMS.data.enabled_files:
        target = root / entry.source
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / entry.name, target)
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The base URL of a server on 127.0.0.1 serving `site`."""
    with serving(site, _Handler) as url:
        yield url


@pytest.fixture
def params(server: str) -> Params:
    """The corpus alone: the lexicon and unlabeled folders are the clean-machine test's."""
    return PARAMS.with_updates(fetch={"base_url": server}, data={"lexicon_files": [], "unlabeled_files": []})


def _with_files(params: Params, *entries: dict) -> Params:
    return params.with_updates(data={"files": list(entries)})


def _entry(name: str, /, **fields: object) -> dict:
    return next(f for f in PARAMS.data.files if f.name == name).model_dump() | fields


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(folder: Path) -> list[str]:
    """Every entry in the folder, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fetch_writes_every_enabled_file_verified(params: Params, tmp_path: Path) -> None:
    target = tmp_path / "corpus"
    report = fetch_corpus(params, target, progress=False)

    names = [f.name for f in PARAMS.data.enabled_files]
    assert report.fetched == names and report.skipped == [] and report.recorded == {}
    assert _names(target) == sorted(names)  # no lock file: every enabled file is pinned
    for entry in PARAMS.data.enabled_files:
        assert (target / entry.name).read_bytes() == (SHARED / entry.name).read_bytes()
        assert _sha256(target / entry.name) == entry.sha256
    assert "healthner_train.jsonl" not in names  # the optional full training split is off by default


def test_pins_are_the_shared_files(tmp_path: Path) -> None:
    for entry in PARAMS.data.enabled_files:
        assert entry.source and entry.sha256 == _sha256(SHARED / entry.name), entry.name


def test_rerun_skips_valid_files_and_replaces_a_damaged_one(params: Params, tmp_path: Path) -> None:
    target = tmp_path / "corpus"
    fetch_corpus(params, target, progress=False)
    damaged = target / "rocling2023_multiner_SM.txt"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    untouched = target / "rocling2023_multiner_FT.txt"
    before = untouched.stat().st_mtime_ns

    report = fetch_corpus(params, target, progress=False)

    assert report.fetched == ["rocling2023_multiner_SM.txt"]
    assert len(report.skipped) == len(PARAMS.data.enabled_files) - 1
    assert damaged.read_bytes() == (SHARED / damaged.name).read_bytes()
    assert untouched.stat().st_mtime_ns == before
    assert fetch_corpus(params, target, progress=False).fetched == []


def test_corrupted_content_is_refused_and_nothing_written(params: Params, site: Path, tmp_path: Path) -> None:
    corrupt = site / "corrupt" / "FT.txt"
    corrupt.parent.mkdir(exist_ok=True)
    data = bytearray((SHARED / "rocling2023_multiner_FT.txt").read_bytes())
    data[1000] ^= 0x01
    corrupt.write_bytes(bytes(data))
    params = _with_files(params, _entry("rocling2023_multiner_FT.txt", source="corrupt/FT.txt"))
    target = tmp_path / "corpus"

    with pytest.raises(FetchError) as caught:
        fetch_corpus(params, target, progress=False)

    message = str(caught.value)
    assert message.startswith("rocling2023_multiner_FT.txt: sha256 ") and "nothing written" in message
    assert "\n" not in message
    assert _names(target) == []


def test_partial_transfer_leaves_nothing(params: Params, tmp_path: Path) -> None:
    entry = PARAMS.data.enabled_files[1]
    params = _with_files(params, _entry(entry.name, source=CUT_SHORT + entry.source))
    target = tmp_path / "corpus"

    with pytest.raises(FetchError) as caught:
        fetch_corpus(params, target, progress=False)

    assert str(caught.value).startswith(f"{entry.name}: transfer cut off")
    assert _names(target) == []


def test_missing_file_on_the_server_names_it(params: Params, tmp_path: Path) -> None:
    params = _with_files(params, _entry("rocling2023_multiner_WA.txt", source="no/such/file.txt"))
    expected = r"^rocling2023_multiner_WA.txt: http://127.0.0.1:\d+/no/such/file.txt answered HTTP 404"
    with pytest.raises(FetchError, match=expected):
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert _names(tmp_path / "corpus") == []


def test_server_down_is_one_line(tmp_path: Path) -> None:
    params = PARAMS.with_updates(fetch={"base_url": f"http://127.0.0.1:{_free_port()}", "timeout_s": 5})
    with pytest.raises(FetchError) as caught:
        fetch_corpus(params, tmp_path / "corpus", progress=False)
    assert str(caught.value) == (
        "healthner_test.jsonl: cannot connect to 127.0.0.1:"
        f"{params.fetch.base_url.rsplit(':', 1)[1]} (offline?); fetching the corpus needs internet access"
    )
    assert _names(tmp_path / "corpus") == []


def test_cli_server_down_exits_1_with_one_line(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(
        app,
        ["corpus", "fetch", str(tmp_path / "corpus"), "--params", str(REPO / "params.yaml")],
        env={"HEALTHNER_FETCH_BASE_URL": base},
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: healthner_test.jsonl: cannot connect to {base.removeprefix('http://')} (offline?); fetching "
        + "the corpus needs internet access"
    ]
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_fetches_then_skips(params: Params, server: str, tmp_path: Path) -> None:
    target = tmp_path / "corpus"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    command = ["corpus", "fetch", str(target), "--params", str(params_file), "--base-url", server]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"corpus in {target}: 4 fetched, 0 already present and valid\n"
    second = CliRunner().invoke(app, command)
    assert second.stdout == f"corpus in {target}: 0 fetched, 4 already present and valid\n"


def test_unpinned_source_is_recorded_on_first_fetch_then_checked(params: Params, site: Path, tmp_path: Path) -> None:
    params = _with_files(params, _entry("healthner_train.jsonl", name=EXTRA, source="extra/train.json", enabled=True))
    served = site / "extra" / "train.json"  # stands in for the full training split: the test split's first lines
    served.parent.mkdir(exist_ok=True)
    served.write_bytes(b"".join((SHARED / "healthner_test.jsonl").read_bytes().splitlines(keepends=True)[:50]))
    target = tmp_path / "corpus"
    digest = _sha256(served)

    first = fetch_corpus(params, target, progress=False)
    assert first.recorded == {EXTRA: digest}
    lock = target / params.fetch.lock_name
    assert yaml.safe_load(lock.read_text()) == {EXTRA: digest}
    assert f"{EXTRA}: sha256 {digest} recorded on first fetch" in first.summary()

    assert fetch_corpus(params, target, progress=False).skipped == [EXTRA]  # checked against the lock

    (target / EXTRA).unlink()
    served.write_bytes(b"{}\n")  # the source changed under the same URL
    with pytest.raises(FetchError, match=f"^{EXTRA}: sha256 .* is not the expected {digest}"):
        fetch_corpus(params, target, progress=False)
    assert _names(target) == [params.fetch.lock_name]


def test_disabled_files_are_neither_fetched_nor_read() -> None:
    paper = load_params(REPO / "configs" / "paper.yaml")
    assert [f.name for f in PARAMS.data.enabled_files] == [f.name for f in PARAMS.data.files if f.enabled]
    assert "healthner_train.jsonl" in [f.name for f in paper.data.enabled_files]
    read = configured_files(PARAMS, PARAMS.data.corpus_dir)  # what the validate stage reads
    assert [f.name for f, _ in read] == [f.name for f in PARAMS.data.enabled_files]
