"""A clean machine's first run: an empty folder, `healthner corpus fetch` from a local server, then
the first three stages (validate, prepare, lexicon) on nothing but what arrived.

The server (http.server on 127.0.0.1) serves copies of the shared corpus, lexicon and unlabeled
files, made at test time, under each entry's pinned `source` path; the fetch's base URL points at it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthner.config import Params, load_params
from healthner.corpus.fetch import fetch_corpus
from healthner.corpus.lexicon import build_lexicon
from healthner.corpus.prepare import prepare
from healthner.corpus.validate import validate
from tests.http_site import serving

REPO = Path(__file__).resolve().parents[2]
PARAMS = load_params(REPO / "params.yaml")


def _shared_folders() -> list[tuple[str, Path, list]]:
    return [(what, REPO / folder, files) for what, folder, files in PARAMS.data.fetched_folders()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a server on 127.0.0.1 holding copies of every fetched file under its `source`."""
    root = tmp_path_factory.mktemp("site")
    for _, folder, files in _shared_folders():
        for entry in files:
            target = root / entry.source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / entry.name, target)
    with serving(root) as url:
        yield url


def _clean_machine(root: Path, server: str) -> Params:
    """params.yaml with every folder the pipeline reads or writes under the empty `root`."""
    return PARAMS.with_updates(
        fetch={"base_url": server},
        data={"corpus_dir": str(root / "shared/data"), "lexicon_dir": str(root / "shared/lexicons"),
              "unlabeled_dir": str(root / "shared/unlabeled")},
        validate={"report": str(root / "reports/validation.json"), "data_docs_dir": str(root / "reports/data_docs"),
                  "output": str(root / "data/validated/corpus.parquet")},
        prepare={"output_dir": str(root / "data/prepared")},
        lexicon={"output": str(root / "data/lexicon/terms.tsv")},
        evaluate={"reports_dir": str(root / "reports")},
    )


def test_every_file_the_pipeline_reads_is_fetched(server: str, tmp_path: Path) -> None:
    params = _clean_machine(tmp_path, server)
    report = fetch_corpus(params, progress=False)
    for what, folder, files in params.data.fetched_folders():
        assert files, what
        assert report.folder(what).fetched == [f.name for f in files]
        shared = next(f for w, f, _ in _shared_folders() if w == what)
        for entry in files:
            assert (folder / entry.name).read_bytes() == (shared / entry.name).read_bytes()
    assert report.summary().splitlines()[:3] == [
        f"corpus in {tmp_path / 'shared/data'}: 4 fetched, 0 already present and valid",
        f"lexicon in {tmp_path / 'shared/lexicons'}: 1 fetched, 0 already present and valid",
        f"unlabeled in {tmp_path / 'shared/unlabeled'}: 2 fetched, 0 already present and valid",
    ]
    assert fetch_corpus(params, progress=False).fetched == []  # a re-run finds everything valid


def test_the_first_three_stages_run_on_what_arrived(server: str, tmp_path: Path) -> None:
    params = _clean_machine(tmp_path, server)
    fetch_corpus(params, progress=False)

    checked = validate(params)
    assert checked.status == "passed" and params.validation.output.is_file()
    prepared = prepare(params)
    assert (params.prepare.output_dir / "train.parquet").is_file() and prepared.vocab_sizes
    terms = build_lexicon(params)
    assert params.lexicon.output.is_file() and terms.terms > 0
    assert terms.by_source["thuocl"] > 10_000  # the fetched THUOCL file was read
