"""The traffic generator: wire-shaped events, and expected CDRs that follow the contract.

Seed-shaped calls are read back with the contract's tables (sections 2 and 3), manual-
shaped ones with its full reading (sections 4 and 6, /tmp/cdrlog-spec.md): both readers
are written here, apart from the generator, so that the two check each other.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.sim.traffic import (
    SCENARIOS,
    Delivery,
    ExpectedCdr,
    GeneratedCall,
    Style,
    delivery_order,
    generate_calls,
    roster,
    traffic_span,
)

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
REQUIRED = {"sessionid", "calltype", "source", "event", "eventTime", "activenum", "agentno"}
OPTIONAL = {"agentphone", "orgidentity", "hangupcause"}
TEXT_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
Timed = list[tuple[datetime, dict[str, str]]]


def calls_for(
    seed: int, count: int = 300, teams: int = 1, agents: int = 5, style: Style = "seed"
) -> list[GeneratedCall]:
    rng = random.Random(seed)
    return generate_calls(rng, START, calls=count, teams=teams, agents=agents, style=style)


def read_time(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    assert TEXT_TIME.fullmatch(text), text
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_seed_wire(events: list[dict[str, str]]) -> ExpectedCdr:
    """The contract's tables (sections 2 and 3) applied to seed-shaped events."""
    calltype = events[0]["calltype"]
    times = [read_time(e["eventTime"]) for e in events]
    legs = {(e["source"], e["event"]): (e, t) for e, t in zip(events, times, strict=True)}
    opener = ("CALLEE" if calltype == "dialout" else "CALLER", "ringing")
    start = legs[opener][1]
    answer = legs.get(("CALLEE", "answer"), (None, None))[1]
    end = min(t for e, t in zip(events, times, strict=True) if e["event"] == "hangup")
    said = [CAUSES[e["hangupcause"]] for e in events if e.get("hangupcause") in CAUSES]
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


CAUSES = {"17": "BUSY", "busy": "BUSY", "34": "CONGESTION", "38": "CONGESTION"}
CAUSES |= {"congestion": "CONGESTION", "failed": "FAILED"}


def in_order(call: GeneratedCall) -> Timed:
    """The call's events by event time, then eventid (contract section 4, "Order")."""
    pairs = zip(call.event_times, call.events, strict=True)
    return sorted(pairs, key=lambda pair: (pair[0], int(pair[1]["eventid"])))


def read_manual_wire(call: GeneratedCall) -> ExpectedCdr:
    """Sections 2 to 4 as /tmp/cdrlog-spec.md reads them, for manual-shaped events."""
    timed = in_order(call)
    first = timed[0][1]
    calltype = first.get("calltype") or first["from"]
    customer = "CALLEE" if calltype == "dialout" else "CALLER"

    def find(source: str, *events: str) -> Timed:
        return [(t, e) for t, e in timed if e["source"] == source and e["event"] in events]

    joins = find("CONSULT", "join")
    start = find(customer, "ringing", "incoming")[0][0]
    answers = find("CALLEE" if calltype == "dialout" else "AGENT", "answer")
    answer = answers[0][0] if answers else None
    # The handling agent's leg: outbound the only one, inbound the one that answered.
    handling = (answers if calltype == "dialin" and answers else find("AGENT", "ringing"))[0]
    mine = [e for _, e in timed if e.get("uniqueid") == handling[1]["uniqueid"]]

    def ends(moment: datetime, event: dict[str, str]) -> bool:
        if event["event"] != "hangup" or event["source"] == "CONSULT":
            return False
        if event["source"] in (customer, "CONVERSATION"):
            return True
        if joins and moment >= joins[0][0]:
            return False
        return calltype == "dialout" or (answer is not None and event in mine)

    hangups = [(t, e) for t, e in timed if ends(t, e)]
    end = hangups[0][0]
    phone = next(e["activenum"] for e in mine if e["event"] == "ringing")
    said = [CAUSES[e["hangupcause"]] for _, e in hangups if e.get("hangupcause") in CAUSES]
    incoming = find(customer, "ringing", "incoming")[0][1].get("activenum")
    return ExpectedCdr(
        team=call.team,
        diallogid=first["sessionid"],
        calltype=calltype,
        target="DialOut" if calltype == "dialout" else "DialIn",
        src=next((e["agentphone"] for _, e in timed if "agentphone" in e), phone)
        if calltype == "dialout"
        else incoming or first["calleridnum"],
        dst=find("CALLEE", "ringing")[0][1]["activenum"] if calltype == "dialout" else phone,
        agentno=next(e["agentno"] for e in mine if e.get("agentno")),
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=int((end - start).total_seconds()),
        billsec=int((end - answer).total_seconds()) if answer else 0,
        disposition="ANSWER" if answer else (said[0] if said else "NOANSWER"),
        status="closed",
        did=next((e["didnumber"] for _, e in timed if "didnumber" in e), None),
        agent_group=mine[0]["AgentGroupId"],
        hold_seconds=held_seconds(timed, answer, end) if answer else 0,
        transferred_to=joins[0][1]["activenum"] if joins else None,
    )


def held_seconds(timed: Timed, answer: datetime, end: datetime) -> int:
    """Each onhold to the next resume after it, else to the end; the union, clipped to
    the talk. Whole-second times make counting covered seconds exact."""
    covered: set[int] = set()
    for n, (moment, event) in enumerate(timed):
        if event["event"] == "onhold":
            off = next((t for t, e in timed[n + 1 :] if e["event"] == "resume"), end)
            on, off = max(moment, answer), min(off, end)
            covered |= set(range(int(on.timestamp()), int(off.timestamp())))
    return len(covered)


def event_key(event: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(event.items()))


def everything(call: GeneratedCall) -> list[dict[str, str]]:
    return [*call.events, *call.agent_events]


def test_seed_events_carry_the_fields_the_seed_sends() -> None:
    calls = calls_for(1, teams=2, agents=3)
    assert len({call.expected.diallogid for call in calls}) == len(calls)
    for call in calls:
        assert call.events
        assert call.agent_events == call.agent_event_times == []
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
        cdr = call.expected
        assert (cdr.did, cdr.agent_group, cdr.hold_seconds, cdr.transferred_to) == (
            None,
            None,
            0,
            None,
        )


def test_the_seed_style_plays_what_the_first_generator_played() -> None:
    """Pinned: a seed must keep giving the same seed-shaped traffic (benchmarks and
    durability tests size themselves on it)."""
    first, second = calls_for(1, 2)
    assert (first.scenario, first.events[0]) == (
        "dialout-answered",
        {
            "sessionid": "7311d8a3c2ce6f44",
            "calltype": "dialout",
            "source": "CALLER",
            "event": "ringing",
            "eventTime": "2024-05-01 09:00:01",
            "activenum": "8003",
            "agentno": "1003",
            "orgidentity": "team1",
            "agentphone": "8003",
        },
    )
    assert (second.scenario, second.expected.src, second.expected.duration) == (
        "dialin-unanswered",
        "18234914346",
        22,
    )


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_expected_cdr_keeps_its_invariants(style: Style) -> None:
    for call in calls_for(2, 400, teams=2, style=style):
        cdr = call.expected
        assert 0 <= cdr.hold_seconds <= cdr.billsec <= cdr.duration
        assert (cdr.disposition == "ANSWER") == (cdr.answertime is not None)
        assert cdr.answertime is not None or cdr.billsec == 0
        assert cdr.starttime <= (cdr.answertime or cdr.starttime) <= cdr.endtime
        assert cdr.duration == (cdr.endtime - cdr.starttime).total_seconds()
        assert cdr.status == "closed"
        assert cdr.starttime.tzinfo is UTC
        assert cdr.starttime.microsecond == 0
        assert cdr.disposition in {"ANSWER", "NOANSWER", "BUSY", "FAILED", "CONGESTION"}
        assert cdr.disposition != "ANSWER" or call.scenario.endswith("-answered")
        assert cdr.transferred_to is None or cdr.answertime is not None
        assert cdr.team == call.team == call.agent.team
        assert cdr.agentno == call.agent.agentno


def test_expected_cdr_is_what_the_contract_reads_from_the_wire() -> None:
    for time_format in ("text", "epoch", "mixed"):
        rng = random.Random(3)
        seed = generate_calls(rng, START, calls=300, time_format=time_format, style="seed")
        for call in seed:
            assert read_seed_wire(call.events) == call.expected, call.scenario
        rng = random.Random(3)
        manual = generate_calls(rng, START, calls=300, teams=2, time_format=time_format)
        for call in manual:
            assert read_manual_wire(call) == call.expected, call.scenario


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_every_scenario_is_played_with_its_own_outcome(style: Style) -> None:
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
        rng = random.Random(4)
        calls = generate_calls(rng, START, calls=20, scenarios={scenario: 1}, style=style)
        assert {(c.expected.target, c.expected.disposition) for c in calls} == {
            (target, disposition)
        }


def test_seed_inbound_calls_have_an_ivr_answer_and_outbound_src_is_the_agent_phone() -> None:
    for call in calls_for(5):
        kinds = {(e["source"], e["event"]) for e in call.events}
        if call.expected.calltype == "dialin":
            assert ("CALLER", "answer") in kinds
            assert call.expected.dst == call.agent.phone
        else:
            assert call.expected.src == call.agent.phone


def test_a_seed_agent_takes_one_call_at_a_time() -> None:
    busy: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for call in calls_for(6, teams=2, agents=2):
        key = (call.agent.team, call.agent.agentno)
        busy.setdefault(key, []).append((call.event_times[0], call.event_times[-1]))
    for spans in busy.values():
        spans.sort()
        assert all(end < next_start for (_, end), (next_start, _) in pairwise(spans))


def test_roster_names_teams_agents_phones_and_groups() -> None:
    agents = roster(2, 3)
    assert [(a.team, a.agentno, a.phone, a.group) for a in agents[:3]] == [
        ("team1", "1001", "8001", "101"),
        ("team1", "1002", "8002", "102"),
        ("team1", "1003", "8003", "101"),
    ]
    assert {a.team for a in agents} == {"team1", "team2"}
    assert {a.group for a in agents if a.team == "team2"} == {"201", "202"}


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_start_is_cut_to_whole_utc_seconds_and_must_be_aware(style: Style) -> None:
    plus_eight = timezone(timedelta(hours=8))
    at = datetime(2024, 5, 1, 17, 0, 0, 500, tzinfo=plus_eight)
    calls = generate_calls(random.Random(7), at, calls=5, style=style)
    moments = [t for c in calls for t in [*c.event_times, *c.agent_event_times]]
    assert all(t.tzinfo is UTC and t.microsecond == 0 for t in moments)
    assert min(moments) >= START
    with pytest.raises(ValueError, match="aware"):
        generate_calls(random.Random(7), datetime(2024, 5, 1), calls=1, style=style)
    with pytest.raises(ValueError, match="unknown scenarios"):
        generate_calls(random.Random(7), START, calls=1, scenarios={"x-maybe": 1}, style=style)


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        generate_calls(random.Random(7), START, calls=1, style="wav")  # type: ignore[arg-type]


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_the_same_seed_gives_the_same_traffic(style: Style) -> None:
    first = calls_for(8, 50, style=style)
    assert first == calls_for(8, 50, style=style)
    assert first != calls_for(9, 50, style=style)
    orders = [delivery_order(first, random.Random(1), duplicate_ratio=0.3, shuffle_ratio=0.5)]
    orders.append(delivery_order(first, random.Random(1), duplicate_ratio=0.3, shuffle_ratio=0.5))
    assert orders[0] == orders[1]


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_traffic_span_reaches_the_last_event(style: Style) -> None:
    calls = calls_for(10, 20, style=style)
    last = max(t for c in calls for t in [*c.event_times, *c.agent_event_times])
    assert START + traffic_span(calls, START) == last
    assert traffic_span([], START) == timedelta(0)


@pytest.mark.parametrize("style", ["seed", "manual"])
def test_deliveries_in_time_order_interleave_calls_but_keep_each_call_in_order(
    style: Style,
) -> None:
    calls = calls_for(11, 40, style=style)
    deliveries = delivery_order(calls, random.Random(1), duplicate_ratio=0.3)
    times = [read_time(d.event["eventTime"]) for d in deliveries]
    assert times == sorted(times)
    positions: dict[str, list[int]] = {}
    for position, delivery in enumerate(deliveries):
        positions.setdefault(delivery.event.get("sessionid", ""), []).append(position)
    assert any(places[-1] - places[0] >= len(places) for places in positions.values())
    for call in calls:
        mine = [event_key(d.event) for d in deliveries if d.call is call and "sessionid" in d.event]
        assert list(dict.fromkeys(mine)) == [event_key(e) for e in call.events]
        assert all(d.team == call.team for d in deliveries if d.call is call)


def test_shuffling_everything_breaks_time_order() -> None:
    calls = calls_for(12, 40)
    deliveries = delivery_order(calls, random.Random(1), shuffle_ratio=1.0)
    times = [read_time(d.event["eventTime"]) for d in deliveries]
    assert times != sorted(times)


def test_deliveries_are_fresh_dicts() -> None:
    calls = calls_for(13, 3, style="manual")
    for delivery in delivery_order(calls, random.Random(1)):
        delivery.event["eventTime"] = "changed"
    assert all(e["eventTime"] != "changed" for c in calls for e in everything(c))


@pytest.mark.parametrize("ratios", [(-0.1, 0.0), (0.0, 1.5)])
def test_ratios_outside_zero_to_one_are_refused(ratios: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        delivery_order(
            calls_for(14, 2), random.Random(1), duplicate_ratio=ratios[0], shuffle_ratio=ratios[1]
        )


def check_deliveries(calls: list[GeneratedCall], deliveries: list[Delivery], ratio: float) -> None:
    original = Counter(event_key(e) for c in calls for e in everything(c))
    delivered = Counter(event_key(d.event) for d in deliveries)
    assert set(delivered) == set(original)
    extra = delivered - original
    assert sum(extra.values()) == round(ratio * sum(original.values()))
    assert max(delivered.values(), default=0) <= 2
    assert all(event_key(d.event) in set(map(event_key, everything(d.call))) for d in deliveries)


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
    for style in ("seed", "manual"):
        calls = calls_for(seed, count, teams=teams, agents=agents, style=style)
        assert len(calls) == count
        for call in calls:
            read = read_manual_wire(call) if style == "manual" else read_seed_wire(call.events)
            assert read == call.expected
            assert 0 <= call.expected.hold_seconds <= call.expected.billsec
            assert call.expected.billsec <= call.expected.duration


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    duplicate_ratio=st.floats(0, 1),
    shuffle_ratio=st.floats(0, 1),
    style=st.sampled_from(["seed", "manual"]),
)
def test_any_delivery_keeps_every_event_plus_the_asked_duplicates(
    seed: int, duplicate_ratio: float, shuffle_ratio: float, style: Style
) -> None:
    calls = calls_for(seed, 8, style=style)
    rng = random.Random(seed)
    deliveries = delivery_order(
        calls, rng, duplicate_ratio=duplicate_ratio, shuffle_ratio=shuffle_ratio
    )
    check_deliveries(calls, deliveries, duplicate_ratio)
