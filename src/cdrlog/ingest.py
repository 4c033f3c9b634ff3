"""Storing accepted events and keeping each call's CDR equal to the fold of its journal.

One event, one transaction: journal the event (an exact re-send is detected by its
fingerprint and changes nothing), update the agent registry, then lock the call's
`call_session` row, read all of the call's events back and write the fold. Whoever
takes a call's lock last sees every event of that call committed before, so the
stored CDR always equals the fold of the whole journal; calls never wait on each other.
See docs/design.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, and_, select, update

from cdrlog.cdr import affects_cdr, fold_call, registry_needed
from cdrlog.database import in_transaction, insert_ignoring_duplicates, inserted, read_only
from cdrlog.events import AgentEvent, CallEvent, Event
from cdrlog.storage import (
    agent,
    call_event,
    call_event_from_row,
    call_session,
    cdr,
    cdr_from_row,
    cdr_values,
    dead_letter,
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event that passed `parse_event`, with the fields it arrived as."""

    event: Event
    fields: Mapping[str, str]
    fingerprint: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A body, or one item of a batch, that was refused, and why."""

    path: str
    team: str | None
    content_type: str | None
    remote_addr: str | None
    body: bytes
    truncated: bool
    reason: Mapping[str, Any]


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"


class Ingestor:
    """The write side: journal, agent registry, CDRs and dead letters."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._insert_event = insert_ignoring_duplicates(engine, call_event)
        self._insert_session = insert_ignoring_duplicates(engine, call_session)
        self._insert_agent = insert_ignoring_duplicates(engine, agent)

    def ingest(self, accepted: Accepted) -> Outcome:
        """Store one event durably; returns once it is committed."""
        event = accepted.event
        locks_call = isinstance(event, CallEvent) and affects_cdr(event)
        if isinstance(event, CallEvent) and locks_call:
            self._ensure_session(event.team, event.sessionid)
        return in_transaction(self.engine, lambda c: self._ingest(c, accepted, locks_call))

    def _ingest(self, connection: Connection, accepted: Accepted, locks_call: bool) -> Outcome:
        event = accepted.event
        now = self.clock()
        if isinstance(event, CallEvent) and locks_call:
            # Lock first: the journal insert and the fold then run one call at a time.
            self._lock_session(connection, event.team, event.sessionid)
        if not inserted(connection, self._insert_event, _journal_row(accepted, now)):
            return Outcome.DUPLICATE
        self._register_agent(connection, event, now)
        if isinstance(event, CallEvent) and locks_call:
            self.refold(connection, event.team, event.sessionid, now)
        return Outcome.STORED

    def refold(self, connection: Connection, team: str, sessionid: str, now: datetime) -> None:
        """Rewrite one call's CDR from its journal; the caller holds the call's lock."""
        rows = connection.execute(
            select(call_event).where(
                call_event.c.orgidentity == team,
                call_event.c.sessionid == sessionid,
                call_event.c.calltype.is_not(None),
            )
        )
        events = [call_event_from_row(row) for row in rows]
        record = fold_call(events, self._agent_phones(connection, team, events))
        existing = connection.execute(
            select(cdr).where(cdr.c.orgidentity == team, cdr.c.diallogid == sessionid)
        ).first()
        if record is None:
            return
        if existing is None:
            values = cdr_values(record) | {"created_at": now, "updated_at": now}
            connection.execute(cdr.insert(), values)
        elif cdr_from_row(existing) != record:
            connection.execute(
                update(cdr)
                .where(cdr.c.id == existing.id)
                .values(**cdr_values(record), updated_at=now)
            )

    def dead_letter(self, letter: DeadLetter) -> int:
        """Keep a refused body for an operator; returns its id."""
        values = {
            "received_at": self.clock(),
            "orgidentity": _storable(letter.team, 64),
            "path": _storable(letter.path, 255) or "",
            "content_type": _storable(letter.content_type, 255),
            "remote_addr": _storable(letter.remote_addr, 64),
            "body": letter.body,
            "truncated": letter.truncated,
            "reason": json.dumps(letter.reason, ensure_ascii=True),
        }

        def insert(connection: Connection) -> int:
            key = connection.execute(dead_letter.insert(), values).inserted_primary_key
            if key is None:  # pragma: no cover - every supported driver reports it
                raise RuntimeError("the database did not report the dead letter's id")
            return int(key[0])

        return in_transaction(self.engine, insert)

    def resolve_dead_letter(self, letter_id: int, resolution: str) -> None:
        values = {"resolved_at": self.clock(), "resolution": resolution[:255]}
        in_transaction(
            self.engine,
            lambda c: c.execute(
                update(dead_letter).where(dead_letter.c.id == letter_id).values(**values)
            ),
        )

    def _ensure_session(self, team: str, sessionid: str) -> None:
        # In its own short transaction: inserting and locking the same new row in one
        # transaction makes concurrent first events of a call deadlock on MySQL.
        key = and_(call_session.c.orgidentity == team, call_session.c.sessionid == sessionid)
        with self.engine.connect() as connection:
            found = read_only(connection).execute(select(call_session.c.id).where(key)).first()
        if found is None:
            row = {"orgidentity": team, "sessionid": sessionid, "created_at": self.clock()}
            in_transaction(self.engine, lambda c: inserted(c, self._insert_session, row))

    def _lock_session(self, connection: Connection, team: str, sessionid: str) -> None:
        key = and_(call_session.c.orgidentity == team, call_session.c.sessionid == sessionid)
        connection.execute(select(call_session.c.id).where(key).with_for_update()).one()

    def set_agent(self, team: str, agentno: str, phone: str) -> None:
        """Bind an agent to a phone by hand; a later login still overrides it."""
        now = self.clock()
        in_transaction(
            self.engine,
            lambda c: self._update_agent(c, team, agentno, {"phone": phone}, now, now),
        )

    def agents(self, team: str | None = None) -> list[dict[str, Any]]:
        query = select(agent).order_by(agent.c.orgidentity, agent.c.agentno)
        if team is not None:
            query = query.where(agent.c.orgidentity == team)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in read_only(connection).execute(query)]

    def _register_agent(self, connection: Connection, event: Event, now: datetime) -> None:
        changes: dict[str, Any] = {}
        if isinstance(event, AgentEvent):
            changes["logged_in"] = event.event == "login"
        if event.agentphone is not None:
            changes["phone"] = event.agentphone
        if event.agentno is None or not changes:
            return
        self._update_agent(connection, event.team, event.agentno, changes, event.event_time, now)

    def _update_agent(
        self,
        connection: Connection,
        team: str,
        agentno: str,
        changes: dict[str, Any],
        event_time: datetime,
        now: datetime,
    ) -> None:
        """Agent number -> phone, per team; the newest change (by event time) wins."""
        key = and_(agent.c.orgidentity == team, agent.c.agentno == agentno)
        known = connection.execute(select(agent.c.event_time).where(key)).scalar()
        if known is not None and known >= event_time:
            return  # what the registry holds is as new as this, or newer
        newer = update(agent).where(key, agent.c.event_time <= event_time)
        statement = newer.values(**changes, event_time=event_time, updated_at=now)
        if connection.execute(statement).rowcount:
            return
        row = {
            "orgidentity": team,
            "agentno": agentno,
            "phone": changes.get("phone"),
            "logged_in": changes.get("logged_in", True),
            "event_time": event_time,
            "updated_at": now,
        }
        if not inserted(connection, self._insert_agent, row):
            # Another sender registered this agent first; ours still wins if newer.
            connection.execute(statement)

    def _agent_phones(
        self, connection: Connection, team: str, events: list[CallEvent]
    ) -> dict[str, str]:
        numbers = registry_needed(events)
        if not numbers:
            return {}
        rows = connection.execute(
            select(agent.c.agentno, agent.c.phone).where(
                agent.c.orgidentity == team,
                agent.c.agentno.in_(sorted(numbers)),
                agent.c.phone.is_not(None),
            )
        )
        return {row.agentno: row.phone for row in rows}


def _storable(text: str | None, width: int) -> str | None:
    """A refused request's own words, cut to the column and without NUL (which
    PostgreSQL cannot store), so keeping the dead letter never fails."""
    if not text:
        return None
    return text.replace("\x00", "\ufffd")[:width]


def _journal_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    event = accepted.event
    row: dict[str, Any] = {
        "orgidentity": event.team,
        "fingerprint": accepted.fingerprint,
        "event": event.event,
        "event_time": event.event_time,
        "agentno": event.agentno,
        "agentphone": event.agentphone,
        "fields": json.dumps(dict(accepted.fields), ensure_ascii=True, sort_keys=True),
        "received_at": now,
        "sessionid": None,
        "calltype": None,
        "source": None,
        "activenum": None,
        "hangupcause": None,
    }
    if isinstance(event, CallEvent):
        row |= {
            "sessionid": event.sessionid,
            "calltype": event.calltype,
            "source": event.source,
            "activenum": event.activenum,
            "hangupcause": event.hangupcause,
        }
    return row
