"""The floor now, added up: calls waiting, agents by state, today's rates over queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdrlog.core.floor import Waiting, floor_now, today_of
from support.statsrows import queue_row

AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_rates_over_queues_are_taken_from_the_summed_counts() -> None:
    """A quiet queue at 0% and a busy one at 90% make 82%, not the mean 45%."""
    today = today_of([queue_row("t", "quiet", 1, 0, 1, 0), queue_row("t", "busy", 12, 2, 1, 9)])
    assert (today.offered, today.short_abandoned, today.abandoned) == (13, 2, 2)
    assert today.service_level == pytest.approx(9 / 11)
    assert today.abandon_rate == pytest.approx(2 / 11)


def test_no_call_counted_gives_no_rate() -> None:
    today = today_of([queue_row("t", "q", 2, 2, 0, 0)])
    assert today.service_level is None
    assert today.abandon_rate is None


def test_each_queue_gets_its_waiting_calls_agents_and_figures() -> None:
    floor = floor_now(
        AT,
        [
            Waiting("t", "100", 2, AT - timedelta(seconds=75)),
            Waiting("t", None, 1, AT - timedelta(seconds=5)),
        ],
        [("t", "100", "available"), ("t", "100", "on_call"), ("t", "200", "paused")],
        [queue_row("t", "100", 10, 1, 1, 8), queue_row("t", "", 3, 0, 0, 3)],
    )
    assert [(q.team, q.queue) for q in floor.queues] == [("t", None), ("t", "100"), ("t", "200")]
    none, hundred, two_hundred = floor.queues
    assert (hundred.waiting, hundred.longest_wait) == (2, 75)
    assert (none.waiting, none.longest_wait) == (1, 5)
    assert hundred.agents == {"available": 1, "on_call": 1}
    assert two_hundred.today is None
    assert none.today is not None
    assert floor.waiting == 3
    assert floor.longest_wait == 75
    assert floor.agents == {
        "available": 1,
        "on_call": 1,
        "paused": 1,
        "after_call_work": 0,
        "logged_out": 0,
    }
    assert floor.today.offered == 13
    assert floor.today.service_level == pytest.approx(11 / 12)


def test_an_empty_floor() -> None:
    floor = floor_now(AT, [], [], [])
    assert floor.queues == []
    assert floor.waiting == 0
    assert floor.longest_wait is None
    assert floor.today.service_level is None
