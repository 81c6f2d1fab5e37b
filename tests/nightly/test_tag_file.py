"""`healthner tag` into one file: the entities file and its rejects file are replaced together at the
end of a run, or not at all; the pair carries one run id."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from healthner.config import load_params
from healthner.nightly import outputs, tag_files
from healthner.nightly.outputs import RUN_KEY
from healthner.nightly.tag_files import rejects_path

REPO = Path(__file__).resolve().parents[2]


def inbox(path: Path, texts: list[str]) -> Path:
    lines = [json.dumps({"article_id": str(i), "text": t}, ensure_ascii=False) for i, t in enumerate(texts)] + ["{bad"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_id(path: Path) -> bytes:
    return pq.read_schema(path).metadata[RUN_KEY]


def test_the_pair_is_written_together_and_carries_one_run_id(random_ensemble: Path, tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    out = tmp_path / "out" / "entities.parquet"
    summary = tag_files.tag_files(params, random_ensemble, inbox(tmp_path / "a.jsonl", ["頭痛發燒。", "咳嗽"]), out)
    assert (summary.read, summary.tagged, summary.rejected) == (3, 2, 1)
    assert pq.read_table(rejects_path(out)).column("reason").to_pylist() == ["invalid_json"]
    assert pq.read_table(out).num_rows == summary.entities and run_id(out) == run_id(rejects_path(out))
    assert sorted(p.name for p in out.parent.iterdir()) == ["entities.parquet", "entities.rejects.parquet"]


def _raise(*args: object, **kwargs: object) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("fail_at", ["tagging", "entities", "rejects"])
def test_a_run_that_fails_leaves_the_previous_pair_as_it_was(
    random_ensemble: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    params = load_params(REPO / "params.yaml")
    out = tmp_path / "entities.parquet"
    tag_files.tag_files(params, random_ensemble, inbox(tmp_path / "a.jsonl", ["頭痛"]), out)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("entities*.parquet")}
    if fail_at == "tagging":
        monkeypatch.setattr(tag_files, "tag_chunks", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
    elif fail_at == "entities":
        monkeypatch.setattr(outputs.ParquetEntities, "write", _raise)
    else:
        monkeypatch.setattr(outputs.RejectsWriter, "flush", _raise)
    with pytest.raises((OSError, RuntimeError)):
        tag_files.tag_files(params, random_ensemble, inbox(tmp_path / "b.jsonl", ["發燒", "咳嗽", "頭痛"]), out)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("entities*.parquet")} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
