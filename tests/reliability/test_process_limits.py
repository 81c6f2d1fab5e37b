"""Tagging stays within the machine: pool processes die with their parent, threads never exceed a
process's share of the cores, and a text without delimiters costs time and memory in proportion to
its length, with exact offsets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import torch

from healthner.nightly.night import tag_threads
from healthner.nightly.pool import load_tagging
from healthner.nightly.tagger import Tagger
from healthner.sections.tagging import NightlyParams, TagParams

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
START_S, GONE_S = 300, 10  # a slow shared CI machine may take minutes to start two model processes

POOLED_TAGGING = textwrap.dedent("""
    import sys
    from healthner.sections.tagging import TagParams
    from healthner.nightly.pool import TaggerPool

    pool = TaggerPool(sys.argv[1], TagParams(device="cpu"), "cpu", processes=2)
    print(" ".join(str(pid) for pid in pool._executor._processes), flush=True)
    while True:
        pool.tag(["病人頭痛發燒三天。" * 50] * 20)
""")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_pool_processes_die_with_a_killed_parent(random_ensemble: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", POOLED_TAGGING, str(random_ensemble)], stdout=subprocess.PIPE,
                              text=True, env=env, cwd=REPO)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2, "the pool did not start"
        time.sleep(1)  # tagging
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=GONE_S)
        deadline = time.monotonic() + GONE_S
        while not all(map(gone, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(map(gone, workers)), [pid for pid in workers if not gone(pid)]
    finally:
        parent.kill()
        for pid in workers if "workers" in locals() else []:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(("threads", "slots", "cores", "expected"), [(3, 8, 2, 1), (None, 2, 16, 8), (4, 1, 2, 2)])
def test_threads_never_exceed_a_process_share_of_the_cores(
    threads: int | None, slots: int, cores: int, expected: int
) -> None:
    assert tag_threads(TagParams(torch_threads=threads), NightlyParams(tag_slots=slots), cores) == expected


def test_one_tagging_process_takes_at_most_the_usable_cores(random_ensemble: Path) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(len(os.sched_getaffinity(0)) + 3)  # more threads than cores, as torch's default may be
        load_tagging(random_ensemble, TagParams(device="cpu", workers=1, torch_threads=64))
        assert torch.get_num_threads() <= len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)


def test_a_long_text_without_delimiters_is_tagged_in_bounded_pieces(random_ensemble: Path) -> None:
    tagger = Tagger.load(random_ensemble, TagParams(device="cpu", max_sentence_chars=300))
    longest = []
    predict = tagger.ensemble.predict
    tagger.ensemble.predict = lambda sentences: longest.append(max(map(len, sentences))) or predict(sentences)
    text = ("病人頭痛發燒咳嗽糖尿病膽結石維生素" * 120)[:2000] + " and more"
    (entities,) = tagger.tag([text])
    assert max(longest) <= 300
    assert entities and all(text[e.start : e.end] == e.text for e in entities)
