"""`healthner tag` never destroys its input and never leaves a mixed pair: an output that is an input
(or inside an input folder) is refused before anything is written, and when installing the new pair
fails halfway the previous pair is put back, with no temporary left and one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from healthner.cli import app
from healthner.config import load_params

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    params = load_params(REPO / "params.yaml").with_updates(tag={"workers": 1})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), allow_unicode=True))
    return path


def articles(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"article_id": f"a{i}", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(["頭痛發燒。", "咳嗽"])), encoding="utf-8")
    return path


def tag(model: Path, params_file: Path, source: Path | str, output: Path) -> object:
    return CliRunner().invoke(app, ["tag", "--input", str(source), "--output", str(output), "--model", str(model),
                                    "--params", str(params_file)])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and all(f in line for f in fragments), line


def test_output_equal_to_input_is_refused_and_the_input_kept(
    random_ensemble: Path, params_file: Path, tmp_path: Path
) -> None:
    source = articles(tmp_path / "a.jsonl")
    before = source.read_bytes()
    one_line_error(tag(random_ensemble, params_file, source, source), "is an input file")
    one_line_error(tag(random_ensemble, params_file, source, tmp_path / "." / "a.jsonl"), "is an input file")
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "params.yaml"]


def test_output_inside_the_input_folder_is_refused(random_ensemble: Path, params_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    articles(folder / "a.jsonl")
    one_line_error(tag(random_ensemble, params_file, folder, folder / "out" / "entities.parquet"), "inside the input folder")
    assert sorted(p.name for p in folder.iterdir()) == ["a.jsonl"]


def test_rejects_target_that_is_a_folder_leaves_the_previous_pair(random_ensemble: Path, params_file: Path,
                                                                   tmp_path: Path) -> None:
    source = articles(tmp_path / "in" / "a.jsonl")
    out = tmp_path / "out" / "entities.parquet"
    first = tag(random_ensemble, params_file, source, out)
    assert first.exit_code == 0, first.output
    before = out.read_bytes()
    (out.parent / "entities.rejects.parquet").unlink()
    (out.parent / "entities.rejects.parquet").mkdir()

    one_line_error(tag(random_ensemble, params_file, source, out), "entities.rejects.parquet")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["entities.parquet", "entities.rejects.parquet"]


def test_a_failed_second_rename_puts_the_first_file_back(tmp_path: Path) -> None:
    from healthner.errors import HealthnerError
    from healthner.nightly.tag_files import install_together

    old, rejects = tmp_path / "entities.parquet", tmp_path / "entities.rejects.parquet"
    pq.write_table(pa.table({"v": ["old"]}), old)
    rejects.mkdir()  # the second rename fails: a folder where the file goes
    new_entities, new_rejects = tmp_path / ".entities.new.tmp", tmp_path / ".rejects.new.tmp"
    pq.write_table(pa.table({"v": ["new"]}), new_entities)
    pq.write_table(pa.table({"v": ["new"]}), new_rejects)

    with pytest.raises(HealthnerError, match="entities.rejects.parquet: cannot write .*left as they were") as caught:
        install_together({old: new_entities, rejects: new_rejects})

    assert "\n" not in str(caught.value)
    assert pq.read_table(old).column("v").to_pylist() == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entities.parquet", "entities.rejects.parquet"]


def test_a_failed_second_rename_removes_a_first_file_that_was_new(tmp_path: Path) -> None:
    from healthner.errors import HealthnerError
    from healthner.nightly.tag_files import install_together

    target, blocked = tmp_path / "entities.jsonl", tmp_path / "entities.rejects.parquet"
    blocked.mkdir()
    staged = {target: tmp_path / ".a.tmp", blocked: tmp_path / ".b.tmp"}
    for temporary in staged.values():
        temporary.write_bytes(b"new")
    with pytest.raises(HealthnerError):
        install_together(staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entities.rejects.parquet"]  # neither new file stands


def _bulky_input(path: Path, articles: int) -> Path:
    """`articles` two-character articles, each with a 32 KiB title: little to tag, much to hold, so a
    reader or writer that keeps the input (articles carry their metadata) shows at once."""
    title = "標" * (32 * 1024 // 3)
    with path.open("w", encoding="utf-8") as fh:
        for number in range(articles):
            fh.write(json.dumps({"article_id": f"a{number}", "text": "頭痛", "title": title}, ensure_ascii=False) + "\n")
    return path


def test_memory_stays_flat_from_1x_to_10x_input(random_ensemble: Path, params_file: Path, tmp_path: Path) -> None:
    import sys

    from benchmarks.stream_memory import child_peak_rss_mb, flatness

    runs = {}
    for count in (1_000, 10_000):
        source = _bulky_input(tmp_path / f"in-{count}.jsonl", count)
        output = tmp_path / f"out-{count}.parquet"
        command = [sys.executable, "-m", "healthner.cli", "tag", "--input", str(source), "--output", str(output),
                   "--model", str(random_ensemble), "--params", str(params_file)]
        code, peak = child_peak_rss_mb(command, tmp_path / "tag.log")
        assert code == 0, (tmp_path / "tag.log").read_text(errors="replace")[-2000:]
        runs[f"{count} articles"] = {"chars": source.stat().st_size, "peak_rss_mb": peak}
        assert set(pq.read_table(output).column("article_id").to_pylist()) <= {f"a{n}" for n in range(count)}
        source.unlink()
    assert flatness(runs, 0.2)["flat"], runs
