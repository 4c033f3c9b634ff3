"""The agent registry: which phone each agent of a team uses (the seed's "known when
the agent logs in"), and its queue. Of each kind of fact, the newest by event time
wins, whatever order facts arrive in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Dialect, and_, func, or_
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from cdrlog.core.events import AGENT, CONSULT, AgentEvent, Event
from cdrlog.store.hotpath import Prepared
from cdrlog.store.tables import agent


@dataclass(frozen=True, slots=True)
class AgentFact:
    """What one event says about an agent: `changes` holds any of `phone`, `agent_group`
    and `logged_in`; with none, only that the agent exists."""

    team: str
    agentno: str
    changes: Mapping[str, Any]
    event_time: datetime


# Each fact a row holds, with the column that holds when it became true: a newer fact
# of one kind must not block an older fact of another that arrives later.
FACT_TIMES: Mapping[str, str] = {
    "phone": "phone_time",
    "agent_group": "group_time",
    "logged_in": "event_time",
}
_LOGGED_IN = {"login": True, "logoff": False, "logout": False}


def fact_of(event: Event) -> AgentFact | None:
    """What an event with an agent number says: a login's or any event's phone (an
    `AGENT` leg's own number is the agent's phone), the agent's queue, logins."""
    if event.agentno is None:
        return None
    changes: dict[str, Any] = {}
    phone = event.agentphone
    if isinstance(event, AgentEvent):
        if event.event in _LOGGED_IN:
            changes["logged_in"] = _LOGGED_IN[event.event]
    elif event.source == CONSULT:
        return None  # a consulted party's leg: whose number it carries is not certain
    elif event.source == AGENT:
        phone = phone or event.activenum
    if phone is not None:
        changes["phone"] = phone
    if event.agent_group is not None:
        changes["agent_group"] = event.agent_group
    return AgentFact(event.team, event.agentno, changes, event.event_time)


def newest_facts(facts: Iterable[AgentFact]) -> dict[str, list[AgentFact]]:
    """Per kind of fact (`""`: the agent exists), the newest fact of each agent, in key
    order, so concurrent batches take agent rows' locks in the same order. Ties on time
    go to the greater value, so the result depends only on the set of facts."""
    newest: dict[str, dict[tuple[str, str], AgentFact]] = defaultdict(dict)
    for fact in facts:
        key = (fact.team, fact.agentno)
        for kind in [*fact.changes, ""]:
            held = newest[kind].get(key)
            if held is None or _later(fact, held, kind):
                newest[kind][key] = fact
    return {kind: [by_key[key] for key in sorted(by_key)] for kind, by_key in newest.items()}


def _later(fact: AgentFact, than: AgentFact, kind: str) -> bool:
    if fact.event_time != than.event_time:
        return fact.event_time > than.event_time
    return bool(kind) and fact.changes[kind] > than.changes[kind]


class Recorder:
    """Applies a batch's facts with one statement per kind of fact: a row is inserted,
    or its fact of that kind updated only where the new one is newer (or as new and
    greater), so the newest fact wins whatever the order of arrival, with no read
    before the write."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect.name
        self._statements = {
            kind: Prepared(upsert_newer(dialect.name, kind), dialect) for kind in [*FACT_TIMES, ""]
        }

    def record(
        self, connection: Connection, facts: Mapping[str, Sequence[AgentFact]], now: datetime
    ) -> None:
        """`facts` as `newest_facts` gives them."""
        # The row of an agent with a phone or queue fact is made by that fact's statement,
        # with what the existence statement would have given it (logged in, as of the
        # newest fact), before its login fact (if any) is weighed against that.
        newest = {(f.team, f.agentno): f.event_time for f in facts.get("", ())}
        covered = {(f.team, f.agentno) for kind in _MAKERS for f in facts.get(kind, ())}
        for kind in ("", *_MAKERS, "logged_in"):
            held = facts.get(kind, ())
            if not kind:
                rows = [_row(f, now) for f in held if (f.team, f.agentno) not in covered]
            elif kind in _MAKERS:
                rows = [_row(f, now) | {"event_time": newest[(f.team, f.agentno)]} for f in held]
            else:
                rows = [_row(f, now) for f in held]
            if rows:
                self._statements[kind].run(connection, rows)


# The kinds of fact whose statements leave an existing row's `logged_in` as it is.
_MAKERS = ("agent_group", "phone")


def _row(fact: AgentFact, now: datetime) -> dict[str, Any]:
    changes = fact.changes
    phone = changes.get("phone")
    group = changes.get("agent_group")
    return {
        "orgidentity": fact.team,
        "agentno": fact.agentno,
        "phone": phone,
        "phone_time": None if phone is None else fact.event_time,
        "agent_group": group,
        "group_time": None if group is None else fact.event_time,
        # A row first known from a call is of an agent at work.
        "logged_in": changes.get("logged_in", True),
        "event_time": fact.event_time,
        "updated_at": now,
        # Its presence is the state events' to set (store/presence.py), not a fact's.
        "state": None,
        "state_since": None,
    }


def upsert_newer(dialect: str, kind: str) -> Insert:
    """INSERT an agent row, or on its key UPDATE the fact `kind` and its time where the
    new one is newer, or as new and greater; for kind `""`, leave an existing row be."""
    keys = [agent.c.orgidentity, agent.c.agentno]
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(agent)
        if not kind:
            return statement.prefix_with("IGNORE")
        newer = _newer(kind, statement.inserted)
        # MySQL assigns left to right, later ones seeing earlier ones: the time last.
        names = ["updated_at", kind, FACT_TIMES[kind]]
        return statement.on_duplicate_key_update(
            [(n, func.if_(newer, statement.inserted[n], agent.c[n])) for n in names]
        )
    upsert = postgresql.insert(agent) if dialect == "postgresql" else sqlite.insert(agent)
    if not kind:
        return upsert.on_conflict_do_nothing(index_elements=keys)
    return upsert.on_conflict_do_update(
        index_elements=keys,
        set_={n: upsert.excluded[n] for n in (kind, FACT_TIMES[kind], "updated_at")},
        where=_newer(kind, upsert.excluded),
    )


def _newer(kind: str, new: Any) -> ColumnElement[bool]:
    """Whether the new row's fact of `kind` wins over the stored one. It reads only the
    stored fact and its time, which MySQL's left-to-right assignments leave as they were
    until the time itself is assigned, last."""
    stamp = FACT_TIMES[kind]
    held = agent.c[stamp]
    return or_(
        held.is_(None),
        new[stamp] > held,
        and_(new[stamp] == held, new[kind] > agent.c[kind]),
    )
