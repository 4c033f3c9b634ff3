"""The traffic generator: wire-shaped events, and expected CDRs that follow the contract."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.traffic import (
    SCENARIOS,
    Delivery,
    ExpectedCdr,
    GeneratedCall,
    delivery_order,
    generate_calls,
    roster,
    traffic_span,
)

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
REQUIRED = {"sessionid", "calltype", "source", "event", "eventTime", "activenum", "agentno"}
OPTIONAL = {"agentphone", "orgidentity", "hangupcause"}
TEXT_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def calls_for(seed: int, count: int = 300, teams: int = 1, agents: int = 5) -> list[GeneratedCall]:
    return generate_calls(random.Random(seed), START, calls=count, teams=teams, agents=agents)


def read_time(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    assert TEXT_TIME.fullmatch(text), text
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_wire(events: list[dict[str, str]]) -> ExpectedCdr:
    """The contract's tables (sections 2 and 3) applied to the events, written apart from
    the generator so that the two check each other."""
    calltype = events[0]["calltype"]
    times = [read_time(e["eventTime"]) for e in events]
    legs = {(e["source"], e["event"]): (e, t) for e, t in zip(events, times, strict=True)}
    opener = ("CALLEE" if calltype == "dialout" else "CALLER", "ringing")
    start = legs[opener][1]
    answer = legs.get(("CALLEE", "answer"), (None, None))[1]
    end = min(t for e, t in zip(events, times, strict=True) if e["event"] == "hangup")
    causes = {"17": "BUSY", "busy": "BUSY", "34": "CONGESTION", "38": "CONGESTION"}
    causes |= {"congestion": "CONGESTION", "failed": "FAILED"}
    said = [causes[e["hangupcause"]] for e in events if e.get("hangupcause") in causes]
    agentno = next(e["agentno"] for e in events if e["agentno"])
    return ExpectedCdr(
        team=events[0]["orgidentity"],
        diallogid=events[0]["sessionid"],
        calltype=calltype,
        target="DialOut" if calltype == "dialout" else "DialIn",
        src=legs[("CALLER", "ringing")][0]["activenum"],
        dst=legs[("CALLEE", "ringing")][0]["activenum"],
        agentno=agentno,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=int((end - start).total_seconds()),
        billsec=int((end - answer).total_seconds()) if answer else 0,
        disposition="ANSWER" if answer else (said[0] if said else "NOANSWER"),
        status="closed",
    )


def event_key(event: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(event.items()))


def test_every_event_carries_the_fields_asterCC_sends() -> None:
    calls = calls_for(1, teams=2, agents=3)
    assert len({call.expected.diallogid for call in calls}) == len(calls)
    for call in calls:
        assert call.events
        assert len(call.events) == len(call.event_times)
        assert call.event_times == sorted(call.event_times)
        for event, moment in zip(call.events, call.event_times, strict=True):
            assert REQUIRED <= set(event) <= REQUIRED | OPTIONAL
            assert all(isinstance(value, str) for value in event.values())
            assert event["sessionid"] == call.expected.diallogid
            assert event["orgidentity"] == call.agent.team == call.expected.team
            assert event["calltype"] == call.expected.calltype
            assert event["source"] in {"CALLER", "CALLEE"}
            assert event["event"] in {"ringing", "answer", "link", "hangup"}
            assert "hangupcause" not in event or event["event"] == "hangup"
            assert event.get("agentphone", call.agent.phone) == call.agent.phone
            assert read_time(event["eventTime"]) == moment


def test_expected_cdr_keeps_its_invariants() -> None:
    for call in calls_for(2, teams=2):
        cdr = call.expected
        assert 0 <= cdr.billsec <= cdr.duration
        assert (cdr.disposition == "ANSWER") == (cdr.answertime is not None)
        assert cdr.answertime is not None or cdr.billsec == 0
        assert cdr.starttime <= (cdr.answertime or cdr.starttime) <= cdr.endtime
        assert cdr.duration == (cdr.endtime - cdr.starttime).total_seconds()
        assert cdr.status == "closed"
        assert cdr.starttime.tzinfo is UTC
        assert cdr.starttime.microsecond == 0
        assert cdr.disposition in {"ANSWER", "NOANSWER", "BUSY", "FAILED", "CONGESTION"}
        assert cdr.disposition != "ANSWER" or call.scenario.endswith("-answered")


def test_expected_cdr_is_what_the_contract_reads_from_the_wire() -> None:
    for time_format in ("text", "epoch", "mixed"):
        calls = generate_calls(random.Random(3), START, calls=300, time_format=time_format)
        for call in calls:
            assert read_wire(call.events) == call.expected, call.scenario


def test_every_scenario_is_played_with_its_own_outcome() -> None:
    outcomes = {
        "dialout-answered": ("DialOut", "ANSWER"),
        "dialout-noanswer": ("DialOut", "NOANSWER"),
        "dialout-busy": ("DialOut", "BUSY"),
        "dialout-congestion": ("DialOut", "CONGESTION"),
        "dialout-failed": ("DialOut", "FAILED"),
        "dialin-answered": ("DialIn", "ANSWER"),
        "dialin-unanswered": ("DialIn", "NOANSWER"),
    }
    assert set(outcomes) == set(SCENARIOS)
    for scenario, (target, disposition) in outcomes.items():
        calls = generate_calls(random.Random(4), START, calls=20, scenarios={scenario: 1})
        assert {(c.expected.target, c.expected.disposition) for c in calls} == {
            (target, disposition)
        }


def test_inbound_calls_have_an_ivr_answer_and_outbound_src_is_the_agent_phone() -> None:
    for call in calls_for(5):
        kinds = {(e["source"], e["event"]) for e in call.events}
        if call.expected.calltype == "dialin":
            assert ("CALLER", "answer") in kinds
            assert call.expected.dst == call.agent.phone
        else:
            assert call.expected.src == call.agent.phone


def test_an_agent_takes_one_call_at_a_time() -> None:
    busy: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for call in calls_for(6, teams=2, agents=2):
        key = (call.agent.team, call.agent.agentno)
        busy.setdefault(key, []).append((call.event_times[0], call.event_times[-1]))
    for spans in busy.values():
        spans.sort()
        assert all(end < next_start for (_, end), (next_start, _) in pairwise(spans))


def test_roster_names_teams_agents_and_phones() -> None:
    agents = roster(2, 3)
    assert [(a.team, a.agentno, a.phone) for a in agents[:3]] == [
        ("team1", "1001", "8001"),
        ("team1", "1002", "8002"),
        ("team1", "1003", "8003"),
    ]
    assert {a.team for a in agents} == {"team1", "team2"}


def test_start_is_cut_to_whole_utc_seconds_and_must_be_aware() -> None:
    plus_eight = timezone(timedelta(hours=8))
    calls = generate_calls(
        random.Random(7), datetime(2024, 5, 1, 17, 0, 0, 500, tzinfo=plus_eight), calls=5
    )
    assert all(t.tzinfo is UTC and t.microsecond == 0 for c in calls for t in c.event_times)
    assert min(t for c in calls for t in c.event_times) >= START
    with pytest.raises(ValueError, match="aware"):
        generate_calls(random.Random(7), datetime(2024, 5, 1), calls=1)
    with pytest.raises(ValueError, match="unknown scenarios"):
        generate_calls(random.Random(7), START, calls=1, scenarios={"dialout-maybe": 1})


def test_the_same_seed_gives_the_same_traffic() -> None:
    first = calls_for(8, 50)
    assert first == calls_for(8, 50)
    assert first != calls_for(9, 50)
    orders = [delivery_order(first, random.Random(1), duplicate_ratio=0.3, shuffle_ratio=0.5)]
    orders.append(delivery_order(first, random.Random(1), duplicate_ratio=0.3, shuffle_ratio=0.5))
    assert orders[0] == orders[1]


def test_traffic_span_reaches_the_last_event() -> None:
    calls = calls_for(10, 20)
    assert START + traffic_span(calls, START) == max(c.event_times[-1] for c in calls)
    assert traffic_span([], START) == timedelta(0)


def test_deliveries_in_time_order_interleave_calls_but_keep_each_call_in_order() -> None:
    calls = calls_for(11, 40)
    deliveries = delivery_order(calls, random.Random(1), duplicate_ratio=0.3)
    times = [read_time(d.event["eventTime"]) for d in deliveries]
    assert times == sorted(times)
    positions: dict[str, list[int]] = {}
    for position, delivery in enumerate(deliveries):
        positions.setdefault(delivery.event["sessionid"], []).append(position)
    assert any(places[-1] - places[0] >= len(places) for places in positions.values())
    for call in calls:
        mine = [event_key(d.event) for d in deliveries if d.call is call]
        assert list(dict.fromkeys(mine)) == [event_key(e) for e in call.events]


def test_shuffling_everything_breaks_time_order() -> None:
    calls = calls_for(12, 40)
    deliveries = delivery_order(calls, random.Random(1), shuffle_ratio=1.0)
    times = [read_time(d.event["eventTime"]) for d in deliveries]
    assert times != sorted(times)


def test_deliveries_are_fresh_dicts() -> None:
    calls = calls_for(13, 3)
    delivery = delivery_order(calls, random.Random(1))[0]
    delivery.event["sessionid"] = "changed"
    assert all(e["sessionid"] != "changed" for c in calls for e in c.events)


@pytest.mark.parametrize("ratios", [(-0.1, 0.0), (0.0, 1.5)])
def test_ratios_outside_zero_to_one_are_refused(ratios: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        delivery_order(
            calls_for(14, 2), random.Random(1), duplicate_ratio=ratios[0], shuffle_ratio=ratios[1]
        )


def check_deliveries(calls: list[GeneratedCall], deliveries: list[Delivery], ratio: float) -> None:
    original = Counter(event_key(e) for c in calls for e in c.events)
    delivered = Counter(event_key(d.event) for d in deliveries)
    assert set(delivered) == set(original)
    extra = delivered - original
    assert sum(extra.values()) == round(ratio * sum(original.values()))
    assert max(delivered.values(), default=0) <= 2
    assert all(event_key(d.event) in {event_key(e) for e in d.call.events} for d in deliveries)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    count=st.integers(0, 25),
    teams=st.integers(1, 3),
    agents=st.integers(1, 4),
)
def test_any_traffic_matches_its_wire_and_invariants(
    seed: int, count: int, teams: int, agents: int
) -> None:
    calls = calls_for(seed, count, teams=teams, agents=agents)
    assert len(calls) == count
    for call in calls:
        assert read_wire(call.events) == call.expected
        assert 0 <= call.expected.billsec <= call.expected.duration


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    duplicate_ratio=st.floats(0, 1),
    shuffle_ratio=st.floats(0, 1),
)
def test_any_delivery_keeps_every_event_plus_the_asked_duplicates(
    seed: int, duplicate_ratio: float, shuffle_ratio: float
) -> None:
    calls = calls_for(seed, 8)
    rng = random.Random(seed)
    deliveries = delivery_order(
        calls, rng, duplicate_ratio=duplicate_ratio, shuffle_ratio=shuffle_ratio
    )
    check_deliveries(calls, deliveries, duplicate_ratio)
