"""Peak memory of `healthner tag` against input size: the same kind of articles at 1x and at
`bench.stream_factor` times as many, each tagged by the real command in a fresh process (one
tagging process, tag.workers 1, so its own peak is the run's). Tagging streams its input and output
in chunks, so the peak should not grow with the input: flat means the larger run's peak is within
`bench.stream_tolerance` of the smaller's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.isolated import KIB_PER_MIB, LOG_TAIL_CHARS, night_records, write_params
from healthner.config import Params

# Runs in a fresh small interpreter: a process forked from a large one starts with the parent's peak
# as its own ru_maxrss (Linux keeps the high-water mark across fork and exec), so the measured command
# is started from this small one and its own peak read back through wait4.
MEASURE = (
    "import os, subprocess, sys\n"
    "with open(sys.argv[1], 'ab') as log:\n"
    "    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=log)\n"
    "    _, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def child_peak_rss_mb(command: Sequence[str], log: Path) -> tuple[int, float]:
    """Run `command` (its output appended to `log`): (exit code, its own peak RSS in MiB, ru_maxrss:
    the largest of it and the children it waited for)."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(log), *command], capture_output=True, text=True,
                          check=True)
    code, kib = done.stdout.split()
    return int(code), int(kib) / KIB_PER_MIB


def write_articles(path: Path, records: Sequence[dict], copies: int) -> int:
    """`records` `copies` times (ids made unique) as JSON lines; the characters written."""
    chars = 0
    with path.open("w", encoding="utf-8") as fh:
        for copy in range(copies):
            for record in records:
                copied = {**record, "article_id": f"{record['article_id']}-{copy:03d}"}
                fh.write(json.dumps(copied, ensure_ascii=False) + "\n")
                chars += len(record["text"])
    return chars


def flatness(runs: dict[str, dict], tolerance: float) -> dict:
    """The larger input's peak over the smaller's, and whether it stays within 1 + tolerance."""
    small, large = (runs[key]["peak_rss_mb"] for key in sorted(runs, key=lambda k: runs[k]["chars"]))
    ratio = large / small
    return {"ratio": ratio, "tolerance": tolerance, "flat": ratio <= 1 + tolerance}


def stream_memory(params: Params, sentences: Sequence[str]) -> dict:
    """`healthner tag` of bench.stream_chars characters of articles and of stream_factor times that:
    input size and peak RSS of each run, and their flatness."""
    bench = params.bench
    count = max(1, bench.stream_chars // bench.article_chars)
    records = night_records(sentences, count, bench.article_chars, params.nightly.sample_date)
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="healthner-stream-") as tmp:
        root = Path(tmp)
        longest = max(len(r["text"]) for r in records)
        one_process = params.with_updates(tag={"workers": 1},
                                          nightly={"max_article_chars": max(params.nightly.max_article_chars, longest)})
        params_file = write_params(one_process, root / "params.yaml")
        for factor in (1, bench.stream_factor):
            source, log = root / f"articles-{factor}x.jsonl", root / "tag.log"
            chars = write_articles(source, records, factor)
            command = [sys.executable, "-m", "healthner.cli", "tag", "--input", str(source), "--output",
                       str(root / f"entities-{factor}x.parquet"), "--model", str(bench.model_dir.resolve()),
                       "--params", str(params_file)]
            code, peak = child_peak_rss_mb(command, log)
            if code:
                raise RuntimeError(f"healthner tag exited {code}:\n{log.read_text(errors='replace')[-LOG_TAIL_CHARS:]}")
            runs[f"{factor}x"] = {"articles": count * factor, "chars": chars, "input_mb": source.stat().st_size / 2**20,
                                  "peak_rss_mb": peak}
    return {"runs": runs, **flatness(runs, bench.stream_tolerance)}
