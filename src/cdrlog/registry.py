"""The agent registry: which phone each agent of a team uses (the seed's "known when
the agent logs in"). The newest fact by event time wins, whatever order facts arrive in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from cdrlog.database import read_only
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


class Recorder:
    """Applies a batch's facts with one upsert per kind of fact (which columns it sets):
    a row is inserted, or updated only where the fact is newer than what it holds, so
    the newest fact wins whatever the order of arrival, with no read before the write.
    Facts must be one per agent, in key order (`newest_facts`), so that concurrent
    batches take the rows' locks in the same order."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._statements: dict[tuple[str, ...], Insert] = {}

    def record(self, connection: Connection, facts: Sequence[AgentFact], now: datetime) -> None:
        by_kind: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for fact in facts:
            by_kind[tuple(sorted(fact.changes))].append(
                {
                    "orgidentity": fact.team,
                    "agentno": fact.agentno,
                    "phone": fact.changes.get("phone"),
                    # A row first known from a call's phone is of an agent at work.
                    "logged_in": fact.changes.get("logged_in", True),
                    "event_time": fact.event_time,
                    "updated_at": now,
                }
            )
        for kind, rows in by_kind.items():
            connection.execute(self._statement(kind), rows)

    def _statement(self, kind: tuple[str, ...]) -> Insert:
        statement = self._statements.get(kind)
        if statement is None:
            statement = self._statements[kind] = upsert_newer(self.dialect, kind)
        return statement


def upsert_newer(dialect: str, changed: tuple[str, ...]) -> Insert:
    """INSERT an agent row, or on its key UPDATE `changed`, `event_time` and
    `updated_at` if the row's event_time is older than the new one."""
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(agent)
        new = statement.inserted
        newer = new.event_time > agent.c.event_time
        # MySQL assigns left to right, later ones seeing earlier ones: event_time last.
        names = [*changed, "updated_at", "event_time"]
        return statement.on_duplicate_key_update(
            [(n, func.if_(newer, new[n], agent.c[n])) for n in names]
        )
    upsert = postgresql.insert(agent) if dialect == "postgresql" else sqlite.insert(agent)
    excluded = upsert.excluded
    return upsert.on_conflict_do_update(
        index_elements=[agent.c.orgidentity, agent.c.agentno],
        set_={n: excluded[n] for n in (*changed, "updated_at", "event_time")},
        where=excluded.event_time > agent.c.event_time,
    )


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
