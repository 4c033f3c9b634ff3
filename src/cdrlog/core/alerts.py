"""Alerts on the call-center figures: the rules, what each measures, and when its alert
is raised or cleared. Pure: the store counts, this decides.

A rule watches one figure of one team (all its queues, or one queue): the service level
or the abandon rate of the inbound calls that started in the last `window_minutes` (as
`report.StatsRow` defines them), the calls waiting now, the longest of their waits, or
the minutes since the team's newest event of any kind (a PBX gone silent). Its alert is
raised when the figure is past the threshold and cleared when it is back; a figure that
cannot be measured (no call counts in the window, a team that never sent an event)
leaves the alert as it is: an empty window is neither a breach nor a recovery.

There is no hysteresis: a figure is past its threshold or it is not. The rates are taken
over a rolling window, which already smooths them; a count that hovers at its threshold
is better watched as a rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from cdrlog.core.floor import Waiting, today_of
from cdrlog.core.hooks import Kind
from cdrlog.core.report import SERVICE_LEVEL_SECONDS, SHORT_ABANDON_SECONDS, StatsRow


class Metric(StrEnum):
    SERVICE_LEVEL_BELOW = "service_level_below"
    ABANDON_RATE_ABOVE = "abandon_rate_above"
    WAITING_ABOVE = "waiting_above"
    WAIT_ABOVE = "wait_above"
    SILENT_MINUTES = "silent_minutes"


RATES = frozenset({Metric.SERVICE_LEVEL_BELOW, Metric.ABANDON_RATE_ABOVE})
# What a threshold is in, for messages and help.
UNITS = {
    Metric.SERVICE_LEVEL_BELOW: "a share from 0 to 1 (0.8 is 80%)",
    Metric.ABANDON_RATE_ABOVE: "a share from 0 to 1 (0.1 is 10%)",
    Metric.WAITING_ABOVE: "calls, a whole number",
    Metric.WAIT_ABOVE: "seconds",
    Metric.SILENT_MINUTES: "minutes",
}

DEFAULT_WINDOW_MINUTES = 30
LONGEST_WINDOW_MINUTES = 24 * 60
LONGEST_SILENCE_MINUTES = 7 * 24 * 60
LONGEST_WAIT_SECONDS = 24 * 3600
MOST_WAITING = 1_000_000
MOST_SECONDS = 3600  # of the service level's and short abandons' terms
NAME_MAX = 64
NOTE_MAX = 255


@dataclass(frozen=True, slots=True)
class NewRule:
    """A rule as asked for, checked (`checked_rule`), before it is stored."""

    team: str
    queue: str | None
    metric: Metric
    threshold: float
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    service_level_seconds: int = SERVICE_LEVEL_SECONDS
    short_abandon_seconds: int = SHORT_ABANDON_SECONDS
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule. `queue` None: every queue of the team (and calls of none)."""

    id: int
    team: str
    queue: str | None
    metric: Metric
    threshold: float
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    service_level_seconds: int = SERVICE_LEVEL_SECONDS
    short_abandon_seconds: int = SHORT_ABANDON_SECONDS
    note: str | None = None
    created_at: datetime | None = None
    removed_at: datetime | None = None

    @property
    def terms(self) -> tuple[int, int, int]:
        """What a rate rule's figures are measured over: rules that share these share
        one query."""
        return (self.window_minutes, self.service_level_seconds, self.short_abandon_seconds)


@dataclass(frozen=True, slots=True)
class AlertState:
    """A rule's alert: raised or not, since when, the value last measured and when, and
    a version one higher with every raise and clear (what its announcements carry)."""

    raised: bool = False
    version: int = 0
    raised_at: datetime | None = None
    cleared_at: datetime | None = None
    value: float | None = None
    measured_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    rule: Rule
    state: AlertState


class Decision(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"
    NOTHING = "nothing"


# Why an alert was cleared, as its payload says.
RECOVERED = "recovered"
RULE_REMOVED = "rule removed"


def checked_rule(
    team: str,
    queue: str | None,
    metric: str,
    threshold: float,
    *,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    service_level_seconds: int = SERVICE_LEVEL_SECONDS,
    short_abandon_seconds: int = SHORT_ABANDON_SECONDS,
    note: str | None = None,
) -> NewRule:
    """The rule asked for; ValueError naming the first field that is wrong and why."""
    if not team.strip() or len(team) > NAME_MAX:
        raise ValueError(f"team: a team's orgidentity, 1 to {NAME_MAX} characters")
    if queue is not None and (not queue.strip() or len(queue) > NAME_MAX):
        raise ValueError(f"queue: an AgentGroupId, 1 to {NAME_MAX} characters, or none for all")
    try:
        chosen = Metric(metric)
    except ValueError:
        raise ValueError(f"metric: one of {', '.join(m.value for m in Metric)}") from None
    _check_threshold(chosen, threshold)
    if not 1 <= window_minutes <= LONGEST_WINDOW_MINUTES:
        raise ValueError(f"window_minutes: 1 to {LONGEST_WINDOW_MINUTES}")
    if not 1 <= service_level_seconds <= MOST_SECONDS:
        raise ValueError(f"service_level_seconds: 1 to {MOST_SECONDS}")
    if not 0 <= short_abandon_seconds <= MOST_SECONDS:
        raise ValueError(f"short_abandon_seconds: 0 to {MOST_SECONDS}")
    if note is not None and len(note) > NOTE_MAX:
        raise ValueError(f"note: at most {NOTE_MAX} characters")
    return NewRule(
        team,
        queue,
        chosen,
        float(threshold),
        window_minutes,
        service_level_seconds,
        short_abandon_seconds,
        note,
    )


def _check_threshold(metric: Metric, threshold: float) -> None:
    wrong = f"threshold of {metric.value}: {UNITS[metric]}"
    if not math.isfinite(threshold):
        raise ValueError(wrong)
    if metric is Metric.SERVICE_LEVEL_BELOW and not 0 < threshold <= 1:
        # Below 0 could never be: above 0, and at most 1 (anything under 100%).
        raise ValueError(f"{wrong}, above 0")
    if metric is Metric.ABANDON_RATE_ABOVE and not 0 <= threshold < 1:
        raise ValueError(f"{wrong}, below 1")
    if metric is Metric.WAITING_ABOVE and (
        threshold != int(threshold) or not 0 <= threshold <= MOST_WAITING
    ):
        raise ValueError(f"{wrong} from 0 to {MOST_WAITING}")
    if metric is Metric.WAIT_ABOVE and not 0 <= threshold <= LONGEST_WAIT_SECONDS:
        raise ValueError(f"{wrong}, 0 to {LONGEST_WAIT_SECONDS}")
    if metric is Metric.SILENT_MINUTES and not 1 <= threshold <= LONGEST_SILENCE_MINUTES:
        raise ValueError(f"{wrong}, 1 to {LONGEST_SILENCE_MINUTES}")


@dataclass(frozen=True, slots=True)
class Figures:
    """What the store measured at `at` for a set of rules: per rate rule's `terms`, the
    stats rows of the window grouped by queue (`group` the queue, "" for none); the
    calls waiting per queue; each watched team's newest event."""

    at: datetime
    windows: Mapping[tuple[int, int, int], Sequence[StatsRow]]
    waiting: Sequence[Waiting]
    newest_event: Mapping[str, datetime]


def measured(rule: Rule, figures: Figures) -> float | None:
    """The rule's figure now, in the threshold's unit; None when there is none."""
    if rule.metric in RATES:
        rows = [
            row
            for row in figures.windows.get(rule.terms, ())
            if row.team == rule.team and (rule.queue is None or row.group == rule.queue)
        ]
        summed = today_of(rows)
        rate = (
            summed.service_level
            if rule.metric is Metric.SERVICE_LEVEL_BELOW
            else summed.abandon_rate
        )
        return None if rate is None else round(rate, 4)
    if rule.metric is Metric.SILENT_MINUTES:
        newest = figures.newest_event.get(rule.team)
        if newest is None:
            return None
        # Whole minutes: "silent for 15 minutes" is so from the 15th minute on.
        return float(max(0, int((figures.at - newest).total_seconds())) // 60)
    queues = [
        group
        for group in figures.waiting
        if group.team == rule.team and (rule.queue is None or group.queue == rule.queue)
    ]
    if rule.metric is Metric.WAITING_ABOVE:
        return float(sum(group.calls for group in queues))
    waits = [max(0, int((figures.at - group.oldest).total_seconds())) for group in queues]
    return float(max(waits, default=0))


def breached(rule: Rule, value: float) -> bool:
    """Whether `value` is past the rule's threshold (at the threshold is not)."""
    if rule.metric is Metric.SERVICE_LEVEL_BELOW:
        return value < rule.threshold
    if rule.metric is Metric.SILENT_MINUTES:
        return value >= rule.threshold
    return value > rule.threshold


def decide(rule: Rule, raised: bool, value: float | None) -> Decision:
    """Raise an alert that is down and breached, clear one that is up and not; nothing
    otherwise, and nothing without a value."""
    if value is None:
        return Decision.NOTHING
    past = breached(rule, value)
    if past and not raised:
        return Decision.RAISE
    if raised and not past:
        return Decision.CLEAR
    return Decision.NOTHING


def kind_of(decision: Decision) -> Kind:
    if decision is Decision.NOTHING:
        raise ValueError("nothing is announced of no change")
    return Kind.ALERT_RAISED if decision is Decision.RAISE else Kind.ALERT_CLEARED


def next_state(
    state: AlertState, decision: Decision, value: float | None, at: datetime
) -> AlertState:
    """The state a raise or clear leaves (one version on)."""
    if decision is Decision.NOTHING:
        raise ValueError("no change makes no new state")
    raising = decision is Decision.RAISE
    return replace(
        state,
        raised=raising,
        version=state.version + 1,
        raised_at=at if raising else state.raised_at,
        cleared_at=None if raising else at,
        value=value,
        measured_at=at,
    )


def subject_of(rule_id: int) -> str:
    """The outbox's subject of a rule's alert: its versions are one sequence."""
    return f"alert:{rule_id}"


def payload(rule: Rule, state: AlertState, reason: str | None = None) -> dict[str, Any]:
    """What a hook receives as the `data` of an `alert.raised` or `alert.cleared`."""
    return {
        "rule": rule.id,
        "team": rule.team,
        "queue": rule.queue,
        "metric": rule.metric.value,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes if rule.metric in RATES else None,
        "value": state.value,
        "state": "raised" if state.raised else "cleared",
        "reason": None if state.raised else reason or RECOVERED,
        "raised_at": _iso(state.raised_at),
        "cleared_at": None if state.raised else _iso(state.cleared_at),
        "note": rule.note,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def by_terms(rules: Iterable[Rule]) -> dict[tuple[int, int, int], list[str]]:
    """The teams each rate rules' `terms` are measured for."""
    found: dict[tuple[int, int, int], set[str]] = {}
    for rule in rules:
        if rule.metric in RATES:
            found.setdefault(rule.terms, set()).add(rule.team)
    return {terms: sorted(teams) for terms, teams in found.items()}
