"""Alert rules and alerts on each backend: rules kept with their alert; what the rules
watch measured in SQL over the rolling window, now, and since the newest event; a raise
or clear made only by an UPDATE that finds the version it read, and announced in the
outbox in the same transaction; an evaluator that read the state before another changed
it changes nothing, even when the two race (a row lock on MariaDB and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select, update

from cdrlog.core.alerts import AlertState, Decision, Metric, NewRule, Rule, measured
from cdrlog.store import alerts
from cdrlog.store.tables import alert_rule, alert_state, outbox
from support.alerting import AT, announced, inbound, received, store_calls

LONGEST_CALL = timedelta(hours=4)


@pytest.fixture
def clean(engine: Engine) -> Iterator[Engine]:
    yield engine
    with engine.begin() as connection:
        for table in (outbox, alert_state, alert_rule):
            connection.execute(delete(table))


def rule(
    engine: Engine,
    metric: Metric,
    threshold: float,
    *,
    team: str = "team1",
    queue: str | None = None,
    window_minutes: int = 30,
    service_level_seconds: int = 20,
    note: str | None = None,
) -> Rule:
    asked = NewRule(
        team,
        queue,
        metric,
        threshold,
        window_minutes=window_minutes,
        service_level_seconds=service_level_seconds,
        note=note,
    )
    return alerts.add(engine, asked, AT - timedelta(days=1))


def test_a_rule_is_kept_with_its_alert_down_until_removed(clean: Engine) -> None:
    made = rule(clean, Metric.SERVICE_LEVEL_BELOW, 0.8, queue="100", window_minutes=15)
    other = rule(clean, Metric.SILENT_MINUTES, 10, team="team2")
    assert (made.team, made.queue, made.metric, made.threshold) == (
        "team1",
        "100",
        Metric.SERVICE_LEVEL_BELOW,
        0.8,
    )
    found = alerts.watched(clean)
    assert [(a.rule.id, a.state) for a in found] == [
        (made.id, AlertState()),
        (other.id, AlertState()),
    ]
    assert [a.rule.id for a in alerts.watched(clean, ["team2"])] == [other.id]
    assert alerts.find(clean, made.id) == made
    assert alerts.active_count(clean) == 2
    assert alerts.remove(clean, made.id, AT, announce=True)
    assert not alerts.remove(clean, made.id, AT, announce=True)
    assert alerts.find(clean, made.id) is None
    assert [a.rule.id for a in alerts.watched(clean)] == [other.id]
    assert announced(clean) == []  # it was not raised: nothing to clear


def test_the_window_now_and_the_newest_event_measured_in_sql(clean: Engine) -> None:
    def ago(minutes: float) -> datetime:
        return AT - timedelta(minutes=minutes)

    store_calls(
        clean,
        [
            inbound("in-time", ago(5), waited=8),
            inbound("late", ago(10), waited=45),
            inbound("lost", ago(12), waited=30, answered=False),
            inbound("short", ago(13), waited=2, answered=False),  # neither rate counts it
            inbound("old", ago(40), waited=90),  # before the 30 minutes
            inbound("q200", ago(3), waited=5, queue="200"),
            inbound("none", ago(3), waited=5, queue=None),
            inbound("waits", AT - timedelta(seconds=75), waited=0, waiting=True),
            inbound("waits2", AT - timedelta(seconds=20), waited=0, waiting=True, queue="200"),
            inbound("other", ago(5), waited=99, team="team2"),
        ],
    )
    received(clean, "team1", ago(25), "old")
    received(clean, "team1", ago(7), "newest")
    received(clean, "team2", ago(1), "team2")
    rules = {
        "sl 100": rule(clean, Metric.SERVICE_LEVEL_BELOW, 0.8, queue="100"),
        "sl all": rule(clean, Metric.SERVICE_LEVEL_BELOW, 0.8),
        "sl 100 60s": rule(
            clean, Metric.SERVICE_LEVEL_BELOW, 0.8, queue="100", service_level_seconds=60
        ),
        "abandon 100": rule(clean, Metric.ABANDON_RATE_ABOVE, 0.1, queue="100"),
        "abandon 100 1h": rule(
            clean, Metric.ABANDON_RATE_ABOVE, 0.1, queue="100", window_minutes=60
        ),
        "waiting": rule(clean, Metric.WAITING_ABOVE, 1),
        "waiting 200": rule(clean, Metric.WAITING_ABOVE, 1, queue="200"),
        "wait": rule(clean, Metric.WAIT_ABOVE, 60),
        "silent": rule(clean, Metric.SILENT_MINUTES, 5),
        "silent 3": rule(clean, Metric.SILENT_MINUTES, 5, team="team3"),
    }
    figures = alerts.measure(clean, list(rules.values()), AT, LONGEST_CALL)
    values = {name: measured(made, figures) for name, made in rules.items()}
    assert values == {
        "sl 100": round(1 / 3, 4),  # in time, of in-time, late, lost
        "sl all": 0.6,  # and q200 and the call of no queue
        "sl 100 60s": round(2 / 3, 4),
        "abandon 100": round(1 / 3, 4),
        "abandon 100 1h": 0.25,  # the old call answered, in the longer window
        "waiting": 2.0,
        "waiting 200": 1.0,
        "wait": 75.0,
        "silent": 7.0,
        "silent 3": None,  # no event ever
    }


def test_a_change_needs_the_version_it_read_and_is_announced_with_it(clean: Engine) -> None:
    watched = rule(clean, Metric.WAITING_ABOVE, 2, queue="100", note="front desk")
    seen = alerts.watched(clean)[0].state
    raised = alerts.change(clean, watched, seen, Decision.RAISE, 5.0, AT, announce=True)
    assert raised == AlertState(True, 1, AT, None, 5.0, AT)
    # An evaluator that read version 0 too is too late.
    assert alerts.change(clean, watched, seen, Decision.RAISE, 6.0, AT, announce=True) is None
    later = AT + timedelta(minutes=3)
    cleared = alerts.change(clean, watched, raised, Decision.CLEAR, 0.0, later, announce=True)
    assert cleared is not None
    assert alerts.watched(clean)[0].state == cleared
    subject = f"alert:{watched.id}"
    found = announced(clean)
    assert [(team, s, version, kind) for team, s, version, kind, _ in found] == [
        ("team1", subject, 1, "alert.raised"),
        ("team1", subject, 2, "alert.cleared"),
    ]
    first, second = found[0][4], found[1][4]
    assert (first["state"], first["value"], first["note"]) == ("raised", 5.0, "front desk")
    assert (second["state"], second["reason"], second["value"]) == ("cleared", "recovered", 0.0)
    assert second["raised_at"] == first["raised_at"]


def test_a_change_nobody_takes_is_made_but_not_announced(clean: Engine) -> None:
    watched = rule(clean, Metric.SILENT_MINUTES, 5)
    seen = alerts.watched(clean)[0].state
    assert alerts.change(clean, watched, seen, Decision.RAISE, 9.0, AT, announce=False)
    assert alerts.watched(clean)[0].state.raised
    assert announced(clean) == []


def test_removing_a_raised_rule_clears_its_alert(clean: Engine) -> None:
    watched = rule(clean, Metric.WAIT_ABOVE, 60)
    seen = alerts.watched(clean)[0].state
    raised = alerts.change(clean, watched, seen, Decision.RAISE, 80.0, AT, announce=True)
    assert raised is not None
    gone = AT + timedelta(minutes=1)
    assert alerts.remove(clean, watched.id, gone, announce=True)
    assert [(v, kind, p["reason"]) for _, _, v, kind, p in announced(clean)] == [
        (1, "alert.raised", None),
        (2, "alert.cleared", "rule removed"),
    ]
    # An evaluator that read the raised state before cannot touch it any more.
    assert alerts.change(clean, watched, raised, Decision.CLEAR, 0.0, gone, True) is None
    listed = alerts.alerts(clean, None, AT)
    assert [(a.rule.id, a.state.raised, a.rule.removed_at) for a in listed] == [
        (watched.id, False, gone)
    ]


def test_the_alerts_listed_are_those_raised_and_those_cleared_lately(clean: Engine) -> None:
    ones = [rule(clean, Metric.WAITING_ABOVE, 1, team=team) for team in ("t1", "t1", "t2", "t2")]
    states = {a.rule.id: a.state for a in alerts.watched(clean)}
    long_ago = AT - timedelta(days=2)
    for made, at in zip(ones, [AT, long_ago, AT - timedelta(minutes=1), AT], strict=True):
        raised = alerts.change(clean, made, states[made.id], Decision.RAISE, 3.0, at, False)
        assert raised is not None
        states[made.id] = raised
    for made in ones[1:3]:  # cleared: long ago, and just now
        cleared_at = long_ago + timedelta(hours=1) if made is ones[1] else AT
        alerts.change(clean, made, states[made.id], Decision.CLEAR, 0.0, cleared_at, False)
    never = rule(clean, Metric.WAITING_ABOVE, 1, team="t1")
    listed = alerts.alerts(clean, None, AT - timedelta(hours=24))
    assert [(a.rule.id, a.state.raised) for a in listed] == [
        (ones[3].id, True),
        (ones[0].id, True),
        (ones[2].id, False),
    ]
    assert never.id not in {a.rule.id for a in listed}
    assert [a.rule.id for a in alerts.alerts(clean, ["t1"], AT - timedelta(hours=24))] == [
        ones[0].id
    ]
    assert alerts.alerts(clean, ["nobody"], AT - timedelta(hours=24)) == []


def test_values_noted_leave_the_alert_as_it_is(clean: Engine) -> None:
    watched = rule(clean, Metric.WAITING_ABOVE, 1)
    alerts.note_values(clean, [(watched.id, 0.0)], AT)
    state = alerts.watched(clean)[0].state
    assert (state.raised, state.version, state.value, state.measured_at) == (False, 0, 0.0, AT)


def test_an_evaluator_blocked_behind_another_finds_the_change_made(clean: Engine) -> None:
    """The second evaluator's UPDATE waits for the first's row lock (SQLite: its write
    lock) and, once the first commits, finds the version moved on: it changes and
    announces nothing."""
    watched = rule(clean, Metric.WAITING_ABOVE, 1)
    seen = alerts.watched(clean)[0].state
    outcome: list[AlertState | None] = []
    with clean.begin() as first:
        first.execute(
            update(alert_state)
            .where(alert_state.c.rule_id == watched.id, alert_state.c.version == 0)
            .values(raised=True, version=1, raised_at=AT)
        )
        second = threading.Thread(
            target=lambda: outcome.append(
                alerts.change(clean, watched, seen, Decision.RAISE, 2.0, AT, announce=True)
            )
        )
        second.start()
        time.sleep(1.0)
        assert second.is_alive(), "the second evaluator did not wait for the row lock"
    second.join(30)
    assert outcome == [None]
    assert announced(clean) == []
    assert alerts.watched(clean)[0].state.version == 1


def test_evaluators_racing_announce_each_change_once(clean: Engine) -> None:
    """Four evaluators read the same state of each of 20 rules and all try to raise it at
    once, then all try to clear it: one raise and one clear per rule, announced once."""
    made = [rule(clean, Metric.WAITING_ABOVE, 1) for _ in range(20)]
    for decision, value in ((Decision.RAISE, 3.0), (Decision.CLEAR, 0.0)):
        seen = {a.rule.id: a.state for a in alerts.watched(clean)}
        barrier = threading.Barrier(4)

        def evaluate(
            decision: Decision = decision,
            value: float = value,
            start: threading.Barrier = barrier,
            states: dict[int, AlertState] = seen,
        ) -> int:
            start.wait()
            won = [
                alerts.change(clean, r, states[r.id], decision, value, AT, announce=True)
                for r in made
            ]
            return sum(state is not None for state in won)

        with ThreadPoolExecutor(4) as pool:
            wins = list(pool.map(lambda _: evaluate(), range(4)))
        assert sum(wins) == len(made)
    found = announced(clean)
    per_rule = {
        r.id: [(v, kind) for _, s, v, kind, _ in found if s == f"alert:{r.id}"] for r in made
    }
    assert all(
        changes == [(1, "alert.raised"), (2, "alert.cleared")] for changes in per_rule.values()
    ), per_rule
    with clean.connect() as connection:
        versions = connection.execute(select(alert_state.c.version)).scalars().all()
    assert set(versions) == {2}
