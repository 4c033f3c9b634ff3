"""`agent_hour` rows and each agent's kept presence are functions of the set of the
agent's events: marked by ingest batch by batch and worked out now and then, in any
order of arrival, with re-sends, and by writers and keepers racing on one agent, they
end equal to the pure fold (per hour, and `fold_agent`) and to what a rebuild from the
journal gives."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from cdrlog.core.accepted import Accepted
from cdrlog.core.agentstate import STATE_AFTER, AgentState, Presence, fold_agent
from cdrlog.core.agenttime import closed_time_per_hour, hour_of, hour_start
from cdrlog.core.events import AgentEvent, fingerprint
from cdrlog.service.ingest import Ingestor
from cdrlog.store.agenthours import keep_up, rebuild_all
from cdrlog.store.database import in_transaction
from cdrlog.store.presence import stored
from cdrlog.store.tables import agent, agent_hour
from conftest import empty_tables

BASE = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
TEAM = "acme"
EVENTS = (*sorted(STATE_AFTER), "acwring")
Rows = dict[tuple[str, str, int], tuple[int, int, int]]


def accepted(event: AgentEvent, n: int) -> Accepted:
    fields = {"event": event.event, "agentno": event.agentno or "", "n": str(n)}
    return Accepted(event, fields, fingerprint(TEAM, fields))


@st.composite
def histories(draw: st.DrawFn) -> list[Accepted]:
    """Two agents' events over about five hours: often on or near an hour's bound."""
    count = draw(st.integers(0, 30))
    found = []
    for n in range(count):
        minute = draw(st.integers(0, 300))
        second = draw(st.sampled_from([0, 0, 1, 59]))
        event = AgentEvent(
            team=TEAM,
            agentno=draw(st.sampled_from(["1001", "1002"])),
            event=draw(st.sampled_from(EVENTS)),
            event_time=BASE + timedelta(minutes=minute, seconds=second),
            agentphone=None,
            agent_group=None,
            eventid=draw(st.one_of(st.none(), st.integers(1, 2))),
        )
        found.append(accepted(event, n))
    return found


def rows_of(engine: Engine) -> Rows:
    with engine.connect() as connection:
        return {
            (r.orgidentity, r.agentno, r.hour): (
                r.available_us,
                r.paused_us,
                r.after_call_work_us,
            )
            for r in connection.execute(select(agent_hour))
        }


def presences_of(engine: Engine) -> dict[str, Presence]:
    with engine.connect() as connection:
        rows = connection.execute(select(agent.c.agentno, agent.c.state, agent.c.state_since))
        return {r.agentno: stored(r.state, r.state_since) for r in rows}


def folded(events: list[AgentEvent]) -> dict[str, Presence]:
    """Every agent the events name, in the state all its events leave it."""
    return {
        agentno: fold_agent(e for e in events if e.agentno == agentno)
        for agentno in {e.agentno or "" for e in events}
    }


def rebuilt(engine: Engine) -> Rows:
    in_transaction(engine, rebuild_all)
    return rows_of(engine)


def pure(events: list[AgentEvent]) -> Rows:
    found: Rows = {}
    for agentno in sorted({e.agentno or "" for e in events}):
        mine = [e for e in events if e.agentno == agentno and e.event in STATE_AFTER]
        if not mine:
            continue
        low = hour_of(min(e.event_time for e in mine))
        high = hour_of(max(e.event_time for e in mine))
        hours = closed_time_per_hour(
            AgentState.LOGGED_OUT, mine, hour_start(low), hour_start(high + 1), closed=False
        )
        for hour, spent in hours.items():
            found[(TEAM, agentno, hour)] = (
                spent.get(AgentState.AVAILABLE, 0),
                spent.get(AgentState.PAUSED, 0),
                spent.get(AgentState.AFTER_CALL_WORK, 0),
            )
    return found


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), order=st.randoms(use_true_random=False), data=st.data())
def test_kept_batch_by_batch_in_any_order_equals_rebuilt(
    engine: Engine, history: list[Accepted], order: random.Random, data: st.DataObject
) -> None:
    empty_tables(engine)
    arrivals = history + [a for a in history if order.random() < 0.2]  # re-sends
    order.shuffle(arrivals)
    ingestor = Ingestor(engine)
    while arrivals:
        size = data.draw(st.integers(1, 6))
        ingestor.ingest_many(arrivals[:size])
        arrivals = arrivals[size:]
        if data.draw(st.booleans()):
            keep_up(engine)  # now and then between batches, as the background loop does
    keep_up(engine)
    kept, presences = rows_of(engine), presences_of(engine)
    events = [a.event for a in history if isinstance(a.event, AgentEvent)]
    assert kept == pure(events)
    assert presences == folded(events)
    assert kept == rebuilt(engine)
    assert presences_of(engine) == presences


# SQLite takes one writer at a time: it has no racing writers to test.
@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_writers_racing_on_one_agent_end_equal_to_rebuilt(engine: Engine) -> None:
    rng = random.Random(7)
    history = [
        accepted(
            AgentEvent(
                team=TEAM,
                agentno=rng.choice(["1001", "1002"]),
                event=rng.choice(EVENTS),
                event_time=BASE + timedelta(minutes=rng.randrange(600)),
                agentphone=None,
                agent_group=None,
                eventid=None,
            ),
            n,
        )
        for n in range(240)
    ]

    def send(seed: int) -> None:
        mine = random.Random(seed)
        share = [a for a in history if mine.random() < 0.6]
        mine.shuffle(share)
        ingestor = Ingestor(engine)
        for at in range(0, len(share), 4):
            ingestor.ingest_many(share[at : at + 4])
            if mine.random() < 0.3:
                keep_up(engine)  # keepers racing with each other and with ingest

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(4)))
    # Whatever no writer sent, one more sends now: the set is then the whole history.
    Ingestor(engine).ingest_many(history)
    keep_up(engine)
    kept, presences = rows_of(engine), presences_of(engine)
    events = [a.event for a in history if isinstance(a.event, AgentEvent)]
    assert kept == pure(events)
    assert presences == folded(events)
    assert kept == rebuilt(engine)
