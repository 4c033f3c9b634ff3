"""The floor right now, as a supervisor reads it: calls waiting, agents by state, and
today's service level and abandon rate, per queue. Pure: the store counts, this adds up.

A queue is a team's `AgentGroupId` (None: calls and agents of no queue). Today is the
reader's day: from local midnight on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cdrlog.core.agentstate import AgentState
from cdrlog.core.report import StatsRow

QueueKey = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class Waiting:
    """Calls of one team's queue waiting now, the longest since `oldest`."""

    team: str
    queue: str | None
    calls: int
    oldest: datetime


@dataclass(slots=True)
class QueueNow:
    """One queue of one team now."""

    team: str
    queue: str | None
    waiting: int = 0
    longest_wait: int | None = None
    agents: Counter[str] = field(default_factory=Counter)
    today: StatsRow | None = None


@dataclass(frozen=True, slots=True)
class Today:
    """Today's inbound calls over several queues, and the rates they make (as
    `StatsRow` defines them; None when the denominator is 0)."""

    offered: int
    short_abandoned: int
    abandoned: int
    answered_within: int
    service_level: float | None
    abandon_rate: float | None


@dataclass(frozen=True, slots=True)
class FloorNow:
    """Every queue, and the floor's totals: calls waiting, the longest wait, agents by
    state, and today's figures over all its queues."""

    at: datetime
    waiting: int
    longest_wait: int | None
    agents: dict[str, int]
    today: Today
    queues: list[QueueNow]


def today_of(rows: Iterable[StatsRow]) -> Today:
    """The figures of calls split over these rows (queues hold disjoint calls), summed
    before the rates are taken: a mean of rates would weigh a quiet queue like a busy one."""
    offered = short = abandoned = within = 0
    for row in rows:
        offered += row.offered
        short += row.short_abandoned
        abandoned += row.abandoned
        within += row.answered_within
    counted = offered - short
    return Today(
        offered=offered,
        short_abandoned=short,
        abandoned=abandoned,
        answered_within=within,
        service_level=within / counted if counted else None,
        abandon_rate=abandoned / counted if counted else None,
    )


def floor_now(
    at: datetime,
    waiting: Iterable[Waiting],
    agents: Iterable[tuple[str, str | None, str]],
    today_by_queue: Sequence[StatsRow],
) -> FloorNow:
    """`agents`: (team, queue, state) of each agent; `today_by_queue`: today's stats rows
    grouped by queue (`team`, and `group` the queue: "" for none)."""
    queues: dict[QueueKey, QueueNow] = {}

    def queue(team: str, name: str | None) -> QueueNow:
        key = (team, name or None)
        if key not in queues:
            queues[key] = QueueNow(team, name or None)
        return queues[key]

    for group in waiting:
        held = queue(group.team, group.queue)
        held.waiting += group.calls
        wait = max(0, int((at - group.oldest).total_seconds()))
        held.longest_wait = max(held.longest_wait or 0, wait)
    for team, name, state in agents:
        queue(team, name).agents[state] += 1
    for row in today_by_queue:
        queue(row.team or "", row.group).today = row
    ordered = [queues[key] for key in sorted(queues, key=lambda k: (k[0], k[1] or ""))]
    waits = [q.longest_wait for q in ordered if q.longest_wait is not None]
    states = Counter({state.value: 0 for state in AgentState})
    for held in ordered:
        states.update(held.agents)
    return FloorNow(
        at=at,
        waiting=sum(q.waiting for q in ordered),
        longest_wait=max(waits) if waits else None,
        agents=dict(states),
        today=today_of(today_by_queue),
        queues=ordered,
    )
