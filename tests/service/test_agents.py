"""What each agent is doing, read from the store on every backend (contract section 6).

The same events in any order and in batches of any size give the same listing; phones
and queues learnt from any event, whichever arrives first; an answered open call puts
its agent on call.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import Rejection, fingerprint, parse_event
from cdrlog.service.ingest import Ingestor
from cdrlog.store import agents
from conftest import empty_tables

TEAM = "team1"
T0 = datetime(2024, 3, 5, 9, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
MAX_CALL = timedelta(hours=4)

Fields = dict[str, str]


def accepted(fields: Mapping[str, str], team: str = TEAM) -> Accepted:
    event = parse_event(fields, url_team=team, pbx_timezone=ZoneInfo("UTC"))
    assert not isinstance(event, Rejection), event
    return Accepted(event=event, fields=dict(fields), fingerprint=fingerprint(team, fields))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def wire_time(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%d %H:%M:%S")


def agent_event(name: str, agentno: str, seconds: float, **extra: str) -> Fields:
    return {"event": name, "agentno": agentno, "eventTime": wire_time(seconds), **extra}


def call_leg(sessionid: str, source: str, name: str, seconds: float, **extra: str) -> Fields:
    return {
        "sessionid": sessionid,
        "calltype": "dialin",
        "source": source,
        "event": name,
        "eventTime": wire_time(seconds),
        **extra,
    }


def listing(engine: Engine, teams: list[str] | None = None) -> dict[str, tuple[object, ...]]:
    return {
        a.agentno: (a.phone, a.agent_group, a.state, a.state_since)
        for a in agents.listing(engine, teams, NOW, MAX_CALL)
    }


# A shift of two agents and a call: 1001 logs in, takes an inbound call that is still
# going on, 1002 logs in, pauses twice (the second changes nothing), sets a mode, goes
# into wrap-up after a call of its own and stops it, logs off. 1003 only rang once.
SHIFT = [
    agent_event("login", "1001", 0, agentphone="8001", AgentGroupId="100", eventid="1"),
    agent_event("login", "1002", 10, agentphone="8002", eventid="2"),
    agent_event("paused", "1002", 20, eventid="3"),
    agent_event("paused", "1002", 30, eventid="4"),
    agent_event("workwayall", "1002", 40, eventid="5"),
    agent_event("nopaused", "1002", 50, eventid="6"),
    agent_event("hangupacw", "1002", 60, eventid="7"),
    agent_event("acwstop", "1002", 60, eventid="8"),
    agent_event("logoff", "1002", 70, eventid="9"),
    call_leg("in1", "CALLER", "incoming", 100, activenum="13900139000", eventid="10"),
    call_leg("in1", "AGENT", "ringing", 105, activenum="8003", agentno="1003", uniqueid="u3"),
    call_leg("in1", "AGENT", "hangup", 115, agentno="1003", uniqueid="u3", hangupcause="19"),
    call_leg("in1", "AGENT", "ringing", 116, activenum="8011", agentno="1001", uniqueid="u1"),
    call_leg("in1", "AGENT", "answer", 120, agentno="1001", uniqueid="u1", AgentGroupId="200"),
]
SHIFT_LISTING = {
    # 1001's phone: the AGENT leg's number (116 s) is newer than the login's (0 s).
    "1001": ("8011", "200", "on_call", at(120)),
    "1002": ("8002", None, "logged_out", at(70)),
    "1003": ("8003", None, "logged_out", None),
}


@given(order=st.permutations(range(len(SHIFT))), size=st.integers(1, len(SHIFT)))
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_order_and_batching_give_the_same_listing(
    engine: Engine, order: list[int], size: int
) -> None:
    empty_tables(engine)
    ingestor = Ingestor(engine, clock=lambda: NOW)
    shuffled = [accepted(SHIFT[i]) for i in order]
    for start in range(0, len(shuffled), size):
        ingestor.ingest_many(shuffled[start : start + size])
    assert listing(engine) == SHIFT_LISTING


def test_the_end_of_the_call_ends_on_call(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest_many([accepted(fields) for fields in SHIFT])
    ingestor.ingest(accepted(call_leg("in1", "CALLER", "hangup", 300, hangupcause="16")))
    assert listing(engine)["1001"] == ("8011", "200", "available", at(0))


def test_a_long_run_of_one_state_is_read_to_its_start(engine: Engine) -> None:
    events = [agent_event("login", "1001", 0), agent_event("paused", "1001", 5)]
    events += [agent_event("paused", "1001", 10 + n) for n in range(50)]
    Ingestor(engine, clock=lambda: NOW).ingest_many([accepted(fields) for fields in events])
    assert listing(engine)["1001"][2:] == ("paused", at(5))


def test_one_teams_agents_only(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest(accepted(agent_event("login", "1001", 0, agentphone="8001")))
    ingestor.ingest(accepted(agent_event("login", "1001", 0, agentphone="9001"), team="team2"))
    assert listing(engine, ["team2"]) == {"1001": ("9001", None, "available", at(0))}
    assert [a.team for a in agents.listing(engine, None, NOW, MAX_CALL)] == ["team1", "team2"]
    assert agents.listing(engine, ["nobody"], NOW, MAX_CALL) == []


def test_an_older_phone_arriving_after_a_newer_sighting_is_kept(engine: Engine) -> None:
    """Each kind of fact keeps its own time: an event that only shows the agent exists
    (no phone) must not block the older phone fact that arrives after it."""
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest(accepted(agent_event("paused", "1001", 50)))
    ingestor.ingest(accepted(agent_event("login", "1001", 10, agentphone="8001")))
    ingestor.ingest(
        accepted(call_leg("c1", "AGENT", "ringing", 30, activenum="8009", agentno="1001"))
    )
    assert listing(engine)["1001"] == ("8009", None, "paused", at(50))


def test_a_consult_leg_teaches_the_registry_nothing(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest(
        accepted(call_leg("c1", "CONSULT", "ringing", 30, activenum="8010", agentno="1005"))
    )
    assert listing(engine) == {}
