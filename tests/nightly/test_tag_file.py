"""`healthner tag` on one file (issue 18.2): the entities file and its rejects file are replaced
together at the end of a run, or not at all; the pair carries one run id."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from healthner.config import load_params
from healthner.nightly.batch import RUN_KEY, rejects_path, tag_file

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
    summary = tag_file(params, random_ensemble, inbox(tmp_path / "a.jsonl", ["頭痛發燒。", "咳嗽"]), out)
    assert (summary.read, summary.tagged, summary.rejected) == (3, 2, 1)
    assert pq.read_table(rejects_path(out)).column("reason").to_pylist() == ["invalid_json"]
    assert pq.read_table(out).num_rows == summary.entities and run_id(out) == run_id(rejects_path(out))
    assert sorted(p.name for p in out.parent.iterdir()) == ["entities.parquet", "entities.rejects.parquet"]


@pytest.mark.parametrize("fail_at", ["tagging", "entities", "rejects"])
def test_a_run_that_fails_leaves_the_previous_pair_as_it_was(
    random_ensemble: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    from healthner.nightly import batch

    params = load_params(REPO / "params.yaml")
    out = tmp_path / "entities.parquet"
    tag_file(params, random_ensemble, inbox(tmp_path / "a.jsonl", ["頭痛"]), out)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("entities*.parquet")}
    real_write = pq.write_table
    written: list[str] = []

    def failing_write(table, where, *args, **kwargs):
        written.append(str(where))
        if fail_at == "entities" or (fail_at == "rejects" and len(written) == 2):
            raise OSError(28, "No space left on device")
        return real_write(table, where, *args, **kwargs)

    monkeypatch.setattr(batch.pq, "write_table", failing_write)
    if fail_at == "tagging":
        monkeypatch.setattr(batch, "tag_articles", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises((OSError, RuntimeError)):
        tag_file(params, random_ensemble, inbox(tmp_path / "b.jsonl", ["發燒", "咳嗽", "頭痛"]), out)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("entities*.parquet")} == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
