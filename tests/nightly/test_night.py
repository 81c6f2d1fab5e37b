"""The DAG's task bodies outside Airflow: which day a run tags, and the torch threads of a tag task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from healthner.errors import HealthnerError
from healthner.nightly.night import NoDay, night_day, tag_threads
from healthner.sections.tagging import NightlyParams, TagParams


def test_a_run_tags_its_data_interval_day_unless_given_one() -> None:
    interval_start = datetime(2026, 11, 24, tzinfo=UTC)  # the run that starts at 2026-11-25 00:00
    assert night_day(None, interval_start) == "2026-11-24"
    assert night_day("2026-11-20", interval_start) == "2026-11-20"  # a manual run or a backfill
    assert night_day("2026-11-20", None) == "2026-11-20"


@pytest.mark.parametrize("requested", [None, "", "24/11/2026", "2026-11-24/../x", "2026-13-01"])
def test_a_run_without_a_day_fails_with_one_line(requested: str | None) -> None:
    with pytest.raises(NoDay):
        night_day(requested, None)
    assert issubclass(NoDay, HealthnerError)


@pytest.mark.parametrize(("cores", "slots", "threads"), [(16, 2, 8), (2, 2, 1), (3, 2, 1), (1, 4, 1), (8, 1, 8)])
def test_tag_threads_share_the_cores_between_the_slots(cores: int, slots: int, threads: int) -> None:
    assert tag_threads(TagParams(), NightlyParams(tag_slots=slots), cores) == threads


def test_tag_threads_set_by_hand_win_within_the_share_and_are_capped_at_it() -> None:
    assert tag_threads(TagParams(torch_threads=3), NightlyParams(tag_slots=2), 16) == 3
    assert tag_threads(TagParams(torch_threads=3), NightlyParams(tag_slots=8), 2) == 1  # never oversubscribed
