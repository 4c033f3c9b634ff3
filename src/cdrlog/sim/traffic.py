"""Realistic asterCC call traffic, and what the receiver must make of it. Pure (stdlib only).

`generate_calls` plays out calls between a team's agents and customers and returns, per
call, the push events asterCC would send (form fields, all strings) together with an
`ExpectedCdr` worked out from the call's own script, never from cdrlog's fold: the two
are independent, so comparing them tests the receiver. In the manual's shape (the
default) the traffic also holds agent events, and `expected_agents` says what state each
agent must be listed in. `delivery_order` then turns the calls into what a receiver
really sees: calls interleaved, some events re-sent, some late.
Randomness and time come in as arguments; equal arguments give equal traffic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cdrlog.sim.traffic_agents import expected_agents
from cdrlog.sim.traffic_floor import manual_calls
from cdrlog.sim.traffic_model import (
    SCENARIOS,
    Agent,
    ExpectedAgent,
    ExpectedCdr,
    GeneratedCall,
    Style,
    TimeFormat,
    roster,
)
from cdrlog.sim.traffic_seed import seed_calls

__all__ = [
    "SCENARIOS",
    "Agent",
    "Delivery",
    "ExpectedAgent",
    "ExpectedCdr",
    "GeneratedCall",
    "Style",
    "TimeFormat",
    "delivery_order",
    "expected_agents",
    "generate_calls",
    "roster",
    "stored_as_expected",
    "traffic_span",
]


def stored_as_expected(values: Mapping[Any, Any]) -> ExpectedCdr:
    """A stored `cdr` row's columns in the shape of `ExpectedCdr`, to compare the two."""
    return ExpectedCdr(
        team=values["orgidentity"],
        **{name: values[name] for name in ExpectedCdr.__dataclass_fields__ if name != "team"},
    )


class Delivery(NamedTuple):
    """One POST a receiver gets: an event (a fresh dict) and the call it belongs to or,
    for an agent event, rides with."""

    call: GeneratedCall
    event: dict[str, str]

    @property
    def team(self) -> str:
        """The team whose push URL the event goes to (a manual-shaped event names none)."""
        return self.call.team


def generate_calls(
    rng: random.Random,
    start: datetime,
    *,
    calls: int = 100,
    teams: int = 1,
    agents: int = 5,
    scenarios: Mapping[str, float] = SCENARIOS,
    mean_gap_seconds: float = 4.0,
    time_format: TimeFormat = "text",
    style: Style = "manual",
) -> list[GeneratedCall]:
    """`calls` calls arriving from `start` (aware; cut to whole seconds) about
    `mean_gap_seconds` apart, spread over the teams. An agent takes one call at a time,
    so a call for a team whose agents are all busy waits for the first one free.
    `time_format` writes eventTime as UTC `YYYY-MM-DD HH:MM:SS`, epoch seconds, or
    either at random per event. `style` is the shape of the events: asterCC's manual
    (agent legs, queues, holds, transfers, agent events, `eventid`; no `orgidentity`)
    or the seed example's (CALLER and CALLEE legs, `orgidentity` on every event).
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if teams < 1 or agents < 1 or calls < 0:
        raise ValueError("teams and agents must be at least 1, calls at least 0")
    if unknown := sorted(set(scenarios) - set(SCENARIOS)):
        raise ValueError(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
    if style not in ("manual", "seed"):
        raise ValueError(f"style must be manual or seed, not {style!r}")
    play = manual_calls if style == "manual" else seed_calls
    return play(
        rng,
        start.astimezone(UTC).replace(microsecond=0),
        calls=calls,
        teams=teams,
        agents=agents,
        scenarios=scenarios,
        mean_gap_seconds=mean_gap_seconds,
        time_format=time_format,
    )


def delivery_order(
    calls: Sequence[GeneratedCall],
    rng: random.Random,
    *,
    duplicate_ratio: float = 0.0,
    shuffle_ratio: float = 0.0,
) -> list[Delivery]:
    """Every event of every call, agent events included, interleaved by event time (and
    `eventid` within a second), as a receiver gets them.

    `round(duplicate_ratio * events)` distinct events are sent twice, the copy right
    after the original (a re-send after a lost answer). Then `round(shuffle_ratio *
    deliveries)` positions trade places at random: 0 keeps each call's events in time
    order, 1 shuffles everything. Both ratios must lie in [0, 1].
    """
    for name, ratio in (("duplicate_ratio", duplicate_ratio), ("shuffle_ratio", shuffle_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {ratio}")
    items = [_everything(call) for call in calls]
    timed = sorted(
        (moment, _eventid(event), c, e)
        for c, pairs in enumerate(items)
        for e, (event, moment) in enumerate(pairs)
    )
    resent = set(rng.sample(range(len(timed)), round(duplicate_ratio * len(timed))))
    ordered: list[Delivery] = []
    for position, (_, _, c, e) in enumerate(timed):
        for _copy in range(2 if position in resent else 1):
            ordered.append(Delivery(calls[c], dict(items[c][e][0])))
    moved = rng.sample(range(len(ordered)), round(shuffle_ratio * len(ordered)))
    places = rng.sample(moved, len(moved))
    shuffled = list(ordered)
    for source, target in zip(moved, places, strict=True):
        shuffled[target] = ordered[source]
    return shuffled


def traffic_span(calls: Sequence[GeneratedCall], start: datetime) -> timedelta:
    """How long after `start` the last event of `calls` happens (zero for no calls)."""
    last = max((call.last_moment for call in calls), default=start)
    return max(timedelta(0), last - start)


def _everything(call: GeneratedCall) -> list[tuple[dict[str, str], datetime]]:
    return [
        *zip(call.events, call.event_times, strict=True),
        *zip(call.agent_events, call.agent_event_times, strict=True),
    ]


def _eventid(event: Mapping[str, str]) -> int:
    """The platform's counter orders events of one second; the seed's shape has none."""
    text = event.get("eventid", "")
    return int(text) if text.isdigit() else 0
