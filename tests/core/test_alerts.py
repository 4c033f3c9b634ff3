"""Alert rules, pure: what each metric measures from the store's figures, when an alert
is raised, cleared or left alone (as tables: rule, state, value, decision), the state a
change leaves, what a hook is sent, and the rules refused with the field named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdrlog.core.alerts import (
    AlertState,
    Decision,
    Figures,
    Metric,
    Rule,
    by_terms,
    checked_rule,
    decide,
    kind_of,
    measured,
    next_state,
    payload,
    subject_of,
)
from cdrlog.core.floor import Waiting
from cdrlog.core.hooks import Kind
from support.statsrows import queue_row

AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)

SL = Rule(1, "team1", None, Metric.SERVICE_LEVEL_BELOW, 0.8)
ABANDON = Rule(2, "team1", "100", Metric.ABANDON_RATE_ABOVE, 0.1)
WAITING = Rule(3, "team1", None, Metric.WAITING_ABOVE, 2)
WAIT = Rule(4, "team1", "100", Metric.WAIT_ABOVE, 60)
SILENT = Rule(5, "team1", None, Metric.SILENT_MINUTES, 15)

DECISIONS = [
    # rule, raised, value, decision
    (SL, False, 0.79, Decision.RAISE),
    (SL, False, 0.8, Decision.NOTHING),  # at the threshold is not below it
    (SL, True, 0.8, Decision.CLEAR),
    (SL, True, 0.5, Decision.NOTHING),  # raised once, not again
    (SL, True, None, Decision.NOTHING),  # no call in the window: no recovery
    (SL, False, None, Decision.NOTHING),  # ... and no breach
    (ABANDON, False, 0.11, Decision.RAISE),
    (ABANDON, False, 0.1, Decision.NOTHING),
    (ABANDON, True, 0.1, Decision.CLEAR),
    (WAITING, False, 3, Decision.RAISE),
    (WAITING, False, 2, Decision.NOTHING),
    (WAITING, True, 0, Decision.CLEAR),
    (WAIT, False, 61, Decision.RAISE),
    (WAIT, True, 60, Decision.CLEAR),
    (SILENT, False, 15, Decision.RAISE),  # no event for M minutes: at M it is silent
    (SILENT, False, 14, Decision.NOTHING),
    (SILENT, True, 0, Decision.CLEAR),
    (SILENT, True, None, Decision.NOTHING),
]


@pytest.mark.parametrize(("rule", "raised", "value", "decision"), DECISIONS)
def test_decisions(rule: Rule, raised: bool, value: float | None, decision: Decision) -> None:
    assert decide(rule, raised, value) is decision


FIGURES = Figures(
    at=AT,
    windows={
        (30, 20, 5): [
            queue_row("team1", "100", offered=10, short=2, abandoned=2, within=4),  # 4 of 8
            queue_row("team1", "200", offered=2, short=0, abandoned=0, within=2),
            queue_row("team2", "100", offered=50, short=0, abandoned=0, within=0),
        ],
        (10, 20, 5): [queue_row("team1", "100", offered=1, short=1, abandoned=0, within=0)],
    },
    waiting=[
        Waiting("team1", "100", 2, AT - timedelta(seconds=90)),
        Waiting("team1", "200", 1, AT - timedelta(seconds=30)),
        Waiting("team2", "100", 9, AT - timedelta(hours=1)),
    ],
    newest_event={"team1": AT - timedelta(minutes=20, seconds=30)},
)

MEASURED = [
    # rule, value
    (SL, 0.6),  # summed over the queues before the rate: 6 within of 10 counted
    (Rule(6, "team1", "100", Metric.SERVICE_LEVEL_BELOW, 0.8), 0.5),
    (ABANDON, 0.25),
    (Rule(7, "team1", "300", Metric.ABANDON_RATE_ABOVE, 0.1), None),  # no call there
    (Rule(8, "team1", "100", Metric.SERVICE_LEVEL_BELOW, 0.8, window_minutes=10), None),
    (WAITING, 3.0),
    (Rule(9, "team1", "200", Metric.WAITING_ABOVE, 0), 1.0),
    (Rule(10, "team3", None, Metric.WAITING_ABOVE, 0), 0.0),  # nobody waits: 0, measured
    (WAIT, 90.0),
    (Rule(11, "team3", None, Metric.WAIT_ABOVE, 60), 0.0),
    (SILENT, 20.0),  # whole minutes
    (Rule(12, "team3", None, Metric.SILENT_MINUTES, 5), None),  # never sent an event
]


@pytest.mark.parametrize(("rule", "value"), MEASURED)
def test_what_each_metric_measures(rule: Rule, value: float | None) -> None:
    assert measured(rule, FIGURES) == value


def test_rules_that_share_their_terms_share_a_query() -> None:
    rules = [SL, ABANDON, Rule(13, "team2", None, Metric.SERVICE_LEVEL_BELOW, 0.9), WAITING]
    assert by_terms(rules) == {(30, 20, 5): ["team1", "team2"]}


def test_a_raise_then_a_clear_each_one_version_on() -> None:
    raised = next_state(AlertState(version=4), Decision.RAISE, 0.6, AT)
    assert raised == AlertState(True, 5, AT, None, 0.6, AT)
    later = AT + timedelta(minutes=7)
    cleared = next_state(raised, Decision.CLEAR, 0.85, later)
    assert cleared == AlertState(False, 6, AT, later, 0.85, later)
    assert kind_of(Decision.RAISE) is Kind.ALERT_RAISED
    assert kind_of(Decision.CLEAR) is Kind.ALERT_CLEARED
    with pytest.raises(ValueError, match="no change"):
        next_state(raised, Decision.NOTHING, 0.6, AT)


def test_the_payload_a_hook_receives() -> None:
    raised = AlertState(True, 1, AT, None, 0.6, AT)
    assert subject_of(SL.id) == "alert:1"
    assert payload(SL, raised) == {
        "rule": 1,
        "team": "team1",
        "queue": None,
        "metric": "service_level_below",
        "threshold": 0.8,
        "window_minutes": 30,
        "value": 0.6,
        "state": "raised",
        "reason": None,
        "raised_at": "2026-12-04T10:00:00+00:00",
        "cleared_at": None,
        "note": None,
    }
    cleared = next_state(raised, Decision.CLEAR, 0.9, AT + timedelta(minutes=5))
    shown = payload(WAIT, cleared, "rule removed")
    assert shown["state"] == "cleared"
    assert shown["reason"] == "rule removed"
    assert shown["window_minutes"] is None  # a figure of now has no window
    assert (shown["raised_at"], shown["cleared_at"]) == (
        "2026-12-04T10:00:00+00:00",
        "2026-12-04T10:05:00+00:00",
    )
    assert payload(WAIT, cleared)["reason"] == "recovered"


REFUSED = [
    # team, queue, metric, threshold, extra, the field named
    ("", None, "service_level_below", 0.8, {}, "team"),
    ("t" * 65, None, "service_level_below", 0.8, {}, "team"),
    ("team1", "", "service_level_below", 0.8, {}, "queue"),
    ("team1", None, "service_level", 0.8, {}, "metric"),
    ("team1", None, "service_level_below", 80, {}, "threshold"),  # a share, not a percent
    ("team1", None, "service_level_below", 0, {}, "threshold"),
    ("team1", None, "abandon_rate_above", 1, {}, "threshold"),
    ("team1", None, "waiting_above", 2.5, {}, "threshold"),
    ("team1", None, "waiting_above", -1, {}, "threshold"),
    ("team1", None, "wait_above", float("nan"), {}, "threshold"),
    ("team1", None, "silent_minutes", 0, {}, "threshold"),
    ("team1", None, "service_level_below", 0.8, {"window_minutes": 0}, "window_minutes"),
    ("team1", None, "service_level_below", 0.8, {"window_minutes": 1441}, "window_minutes"),
    ("team1", None, "service_level_below", 0.8, {"service_level_seconds": 0}, "service_level"),
    ("team1", None, "abandon_rate_above", 0.1, {"short_abandon_seconds": -1}, "short_abandon"),
    ("team1", None, "wait_above", 60, {"note": "n" * 256}, "note"),
]


@pytest.mark.parametrize(("team", "queue", "metric", "threshold", "extra", "named"), REFUSED)
def test_a_wrong_rule_is_refused_naming_the_field(
    team: str,
    queue: str | None,
    metric: str,
    threshold: float,
    extra: dict[str, Any],
    named: str,
) -> None:
    with pytest.raises(ValueError, match=f"^{named}") as refused:
        checked_rule(team, queue, metric, threshold, **extra)
    assert str(refused.value)


def test_a_rule_as_asked() -> None:
    asked = checked_rule("team1", "100", "waiting_above", 5, window_minutes=10, note="lunch")
    assert (asked.metric, asked.threshold, asked.window_minutes) == (Metric.WAITING_ABOVE, 5.0, 10)
    assert (asked.service_level_seconds, asked.short_abandon_seconds) == (20, 5)
