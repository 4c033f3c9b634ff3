"""The agent registry: which phone each agent of a team uses (the seed's "known when
the agent logs in"). The newest fact by event time wins, whatever order facts arrive in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, select, update
from sqlalchemy.sql.dml import Insert

from cdrlog.database import inserted, read_only
from cdrlog.events import AgentEvent, Event
from cdrlog.storage import agent


@dataclass(frozen=True, slots=True)
class AgentFact:
    """What one event says about an agent (`changes` holds `phone` and/or `logged_in`)."""

    team: str
    agentno: str
    changes: Mapping[str, Any]
    event_time: datetime


def fact_of(event: Event) -> AgentFact | None:
    """A login/logout, or a call event carrying both `agentno` and `agentphone`."""
    changes: dict[str, Any] = {}
    if isinstance(event, AgentEvent):
        changes["logged_in"] = event.event == "login"
    if event.agentphone is not None:
        changes["phone"] = event.agentphone
    if event.agentno is None or not changes:
        return None
    return AgentFact(event.team, event.agentno, changes, event.event_time)


def newest_facts(facts: Iterable[AgentFact]) -> list[AgentFact]:
    """Per agent, only the newest fact of a batch can matter; in a fixed order, so
    concurrent batches take agent rows' locks in the same order."""
    newest: dict[tuple[str, str], AgentFact] = {}
    for fact in facts:
        key = (fact.team, fact.agentno)
        held = newest.get(key)
        if held is None or _later(fact, held):
            newest[key] = fact
    return [newest[key] for key in sorted(newest)]


def _later(fact: AgentFact, than: AgentFact) -> bool:
    if fact.event_time != than.event_time:
        return fact.event_time > than.event_time
    return sorted(fact.changes.items()) > sorted(than.changes.items())


def record(connection: Connection, insert_agent: Insert, fact: AgentFact, now: datetime) -> None:
    """Apply `fact` unless the registry already holds one as new or newer."""
    key = and_(agent.c.orgidentity == fact.team, agent.c.agentno == fact.agentno)
    known = connection.execute(select(agent.c.event_time).where(key)).scalar()
    if known is not None and known >= fact.event_time:
        return
    newer = update(agent).where(key, agent.c.event_time <= fact.event_time)
    statement = newer.values(**fact.changes, event_time=fact.event_time, updated_at=now)
    if connection.execute(statement).rowcount:
        return
    row = {
        "orgidentity": fact.team,
        "agentno": fact.agentno,
        "phone": fact.changes.get("phone"),
        "logged_in": fact.changes.get("logged_in", True),
        "event_time": fact.event_time,
        "updated_at": now,
    }
    if not inserted(connection, insert_agent, row):
        # Another sender registered this agent first; ours still wins if newer.
        connection.execute(statement)


def phones(connection: Connection, team: str, numbers: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    rows = connection.execute(
        select(agent.c.agentno, agent.c.phone).where(
            agent.c.orgidentity == team, agent.c.agentno.in_(wanted), agent.c.phone.is_not(None)
        )
    )
    return {row.agentno: row.phone for row in rows}


def listing(engine: Engine, team: str | None = None) -> list[dict[str, Any]]:
    query = select(agent).order_by(agent.c.orgidentity, agent.c.agentno)
    if team is not None:
        query = query.where(agent.c.orgidentity == team)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in read_only(connection).execute(query)]
