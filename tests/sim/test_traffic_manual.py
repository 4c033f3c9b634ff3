"""Traffic in the shape of asterCC's interface manual: its fields, its call flows, its
agent events, and the agent states they must leave (contract section 6)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from cdrlog.sim.traffic import (
    Agent,
    ExpectedAgent,
    ExpectedCdr,
    GeneratedCall,
    delivery_order,
    expected_agents,
    generate_calls,
)

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LEG_FIELDS = {"source", "event", "sessionid", "eventTime", "eventid", "AgentTeamId"}
LEG_FIELDS |= {"AgentGroupId", "calleridnum", "uniqueid", "channel"}
AGENT_FIELDS = {"agentno", "event", "eventTime", "eventid", "AgentTeamId"}
STATE_AFTER = {"login": "available", "logoff": "logged_out", "logout": "logged_out"}
STATE_AFTER |= {"paused": "paused", "nopaused": "available"}
STATE_AFTER |= {"hangupacw": "after_call_work", "acwstop": "available"}
MODES = {"acwring", "acwanswer", "acwoff", "workwayall", "workwaydialin", "workwaydialout"}


def calls_for(seed: int, count: int = 600, teams: int = 2, agents: int = 5) -> list[GeneratedCall]:
    return generate_calls(random.Random(seed), START, calls=count, teams=teams, agents=agents)


def timeline(calls: list[GeneratedCall]) -> list[tuple[datetime, int, str, dict[str, str]]]:
    """Every event of the traffic, with its team, by event time and eventid."""
    rows = [
        (moment, int(event["eventid"]), call.team, event)
        for call in calls
        for event, moment in [
            *zip(call.events, call.event_times, strict=True),
            *zip(call.agent_events, call.agent_event_times, strict=True),
        ]
    ]
    return sorted(rows, key=lambda row: row[:2])


def test_call_events_carry_what_the_manual_shows_and_never_the_team() -> None:
    for call in calls_for(1):
        for event in call.events:
            assert "orgidentity" not in event
            assert all(isinstance(value, str) and value for value in event.values())
            assert {"calltype", "from"} & set(event)
            assert event.get("calltype", event.get("from")) == call.expected.calltype
            if event["source"] == "CONVERSATION":
                assert event["event"] == "hangup"
                assert LEG_FIELDS - {"uniqueid", "channel"} <= set(event)
                continue
            assert set(event) >= LEG_FIELDS, event
            assert event["event"] != "ringing" or "activenum" in event
            assert event["source"] in {"AGENT", "CALLER", "CALLEE", "CONSULT"}
            assert ("agentno" in event) <= (event["source"] == "AGENT")
            assert "hangupcause" not in event or event["event"] == "hangup"
        closing = [e for e in call.events if e["source"] == "CONVERSATION"]
        assert [e["event"] for e in closing] == ["hangup"]
        ringing = [e for e in call.events if e["source"] == "AGENT" and e["event"] == "ringing"]
        assert all("agentno" in e for e in ringing)


def test_agent_events_name_an_agent_and_no_call() -> None:
    # A quarter of the agents leave at closing time: three runs make one leave surely.
    calls = [call for seed in (2, 3, 4) for call in calls_for(seed)]
    for call in calls:
        for event in call.agent_events:
            assert set(event) >= AGENT_FIELDS, event
            assert not {"sessionid", "orgidentity", "source"} & set(event)
            assert event["event"] in {*STATE_AFTER, *MODES}
            assert ("agentphone" in event) == (event["event"] == "login")
    kinds = Counter(e["event"] for c in calls for e in c.agent_events)
    assert set(kinds) >= {"login", "hangupacw", "acwstop", "paused", "nopaused"}
    assert set(kinds) & {"logoff", "logout"}, "someone leaves at closing time"
    assert set(kinds) & MODES


def test_eventids_count_every_event_of_the_platform_in_time_order() -> None:
    calls = calls_for(3)
    rows = timeline(calls)
    ids = [eventid for _, eventid, _, _ in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    for call in calls:
        assert [int(e["eventid"]) for e in call.events] == sorted(
            int(e["eventid"]) for e in call.events
        )
    seconds = Counter(moment for moment, _, _, event in rows if "sessionid" in event)
    assert max(seconds.values()) > 1, "some events share their second with another"


def test_undisturbed_delivery_follows_the_eventids() -> None:
    calls = calls_for(4, 100)
    deliveries = delivery_order(calls, random.Random(1))
    ids = [int(d.event["eventid"]) for d in deliveries]
    assert ids == sorted(ids)
    assert len(deliveries) == sum(len(c.events) + len(c.agent_events) for c in calls)


def test_every_flow_of_the_manual_is_played() -> None:
    calls = calls_for(5, 1500)
    seen: Counter[str] = Counter()
    for call in calls:
        kinds = [(e["source"], e["event"]) for e in call.events]
        rang = [e for e in call.events if e["source"] == "AGENT" and e["event"] == "ringing"]
        seen["queue rang several"] += call.expected.calltype == "dialin" and len(rang) > 1
        seen["ivr answer"] += ("CALLER", "answer") in kinds
        seen["incoming without activenum"] += any(
            e["event"] == "incoming" and "activenum" not in e for e in call.events
        )
        seen["answer without agentno"] += any(
            e["source"] == "AGENT" and e["event"] == "answer" and "agentno" not in e
            for e in call.events
        )
        seen["hold"] += ("AGENT", "onhold") in kinds
        seen["hold until the end"] += kinds.count(("AGENT", "onhold")) > kinds.count(
            ("AGENT", "resume")
        )
        seen["consult without join"] += (
            "CONSULT",
            "ringing",
        ) in kinds and not call.expected.transferred_to
        seen["transfer"] += call.expected.transferred_to is not None
        seen["from without calltype"] += "calltype" not in call.events[0]
        seen["userdata"] += "userdata" in call.events[0]
        seen["campaign"] += call.events[0].get("modeltype") == "Campaign"
        seen["did outbound"] += call.expected.calltype == "dialout" and bool(call.expected.did)
        hangups = [e["source"] for e in call.events if e["event"] == "hangup"]
        seen["conversation hangup first"] += hangups[0] == "CONVERSATION"
        seen["agent hangup first"] += hangups[0] == "AGENT"
    assert all(seen[name] > 0 for name in seen), seen


def test_a_transferred_call_ends_with_the_customer_not_the_agent_who_left() -> None:
    transferred = [c for c in calls_for(6, 1500) if c.expected.transferred_to]
    assert transferred
    for call in transferred:
        times = dict[tuple[str, str], datetime]()
        for event, moment in zip(call.events, call.event_times, strict=True):
            times.setdefault((event["source"], event["event"]), moment)
        joined = times[("CONSULT", "join")]
        left = times[("AGENT", "hangup")]
        customer = "CALLEE" if call.expected.calltype == "dialout" else "CALLER"
        assert joined <= left < call.expected.endtime
        assert call.expected.endtime == min(
            times[(customer, "hangup")], times[("CONVERSATION", "hangup")]
        )
        consult = next(e for e in call.events if (e["source"], e["event"]) == ("CONSULT", "join"))
        assert call.expected.transferred_to == consult["activenum"]


def test_an_unanswered_inbound_call_names_the_first_agent_whose_phone_rang() -> None:
    calls = generate_calls(
        random.Random(7), START, calls=200, agents=6, scenarios={"dialin-unanswered": 1}
    )
    for call in calls:
        rang = [e for e in call.events if e["source"] == "AGENT" and e["event"] == "ringing"]
        assert rang
        assert (call.expected.agentno, call.expected.dst) == (
            rang[0]["agentno"],
            rang[0]["activenum"],
        )
        assert call.expected.hold_seconds == 0
        assert call.expected.answertime is None
    assert any(
        len({e.get("uniqueid") for e in c.events if e["source"] == "AGENT"}) > 1 for c in calls
    )


def test_agents_log_in_first_and_are_rung_only_while_available() -> None:
    """No phone rings for an agent who is paused, wrapping up, logged out or on a call."""
    calls = calls_for(8, 800, agents=3)
    state: dict[tuple[str, str], str] = {}
    on_line: dict[tuple[str, str], str] = {}
    for _, _, team, event in timeline(calls):
        key = (team, event["agentno"]) if "agentno" in event else None
        if "sessionid" not in event:
            assert key is not None
            assert key in state or event["event"] == "login"
            state[key] = STATE_AFTER.get(event["event"], state.get(key, "logged_out"))
            continue
        if event["source"] != "AGENT" or key is None:
            continue
        if event["event"] == "ringing":
            assert state.get(key) == "available", (key, event)
            assert key not in on_line, "one call at a time"
            on_line[key] = event["uniqueid"]
        elif event["event"] == "hangup":
            assert on_line.pop(key) == event["uniqueid"]


def test_expected_agents_follow_the_latest_state_changing_event() -> None:
    agents = expected_agents(calls_for(9, 300))
    assert len(agents) == 10
    assert {a.phone for a in agents} == {f"800{n}" for n in range(1, 6)}
    assert all(a.agent_group in {"101", "102", "201", "202"} for a in agents)
    assert all(a.state != "on_call" and a.state_since is not None for a in agents)
    assert {a.state for a in expected_agents(calls_for(10, 300))} > {"available"}


def hand_made(*steps: tuple[str, int]) -> GeneratedCall:
    """A call whose only interest is agent 1001's events: (event, minute) each."""
    agent = Agent("team1", "1001", "8001", "101")
    cdr = ExpectedCdr(
        "team1",
        "s",
        "dialout",
        "DialOut",
        "8001",
        "1",
        "1001",
        START,
        None,
        START,
        0,
        0,
        "NOANSWER",
        "closed",
    )
    events = [
        {"agentno": "1001", "event": name, "eventTime": "x", "eventid": str(n)}
        | ({"agentphone": "8001", "AgentGroupId": "101"} if name == "login" else {})
        for n, (name, _) in enumerate(steps, start=1)
    ]
    times = [START + timedelta(minutes=minute) for _, minute in steps]
    return GeneratedCall("dialout-noanswer", agent, [], [], cdr, events, times)


def state_of(*steps: tuple[str, int]) -> tuple[str, datetime | None]:
    (agent,) = expected_agents([hand_made(*steps)])
    return agent.state, agent.state_since


def at(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


def test_a_state_runs_from_the_first_event_that_entered_it() -> None:
    assert state_of(("login", 0)) == ("available", at(0))
    # A nopaused while available, or a mode event, leaves state_since where it was.
    assert state_of(("login", 0), ("nopaused", 5), ("workwayall", 6)) == ("available", at(0))
    assert state_of(("login", 0), ("hangupacw", 3), ("acwstop", 4)) == ("available", at(4))
    assert state_of(("login", 0), ("paused", 3), ("paused", 4)) == ("paused", at(3))
    assert state_of(("login", 0), ("logoff", 9)) == ("logged_out", at(9))
    assert state_of(("acwring", 1)) == ("logged_out", None)
    # Event time decides, not the order the events are listed in.
    assert state_of(("paused", 7), ("login", 0)) == ("paused", at(7))


def test_expected_agents_of_seed_traffic_are_logged_out_with_their_phones() -> None:
    calls = generate_calls(random.Random(11), START, calls=50, agents=3, style="seed")
    assert expected_agents(calls) == [
        ExpectedAgent("team1", f"100{n}", f"800{n}", None, "logged_out", None) for n in (1, 2, 3)
    ]


def test_agent_events_ride_with_a_call_of_their_own_team() -> None:
    calls = calls_for(12, 300, teams=3)
    for call in calls:
        assert all(e["AgentTeamId"] == call.team.removeprefix("team") for e in everything(call))


def everything(call: GeneratedCall) -> list[dict[str, str]]:
    return [*call.events, *call.agent_events]
