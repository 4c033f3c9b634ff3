"""Storing accepted events and keeping each call's CDR equal to the fold of its journal.

A batch of events (one, or many when a batch is pushed, replayed or group-committed) is
one transaction: lock the `call_session` rows of the calls it touches (in key order, so
concurrent batches cannot deadlock), journal its events (an exact re-send is found by
its fingerprint and changes nothing), update the agent registry, then read every touched
call's events back and write the fold. Whoever takes a call's lock last sees every
event of that call committed before, so the stored CDR always equals the fold of the
whole journal; calls never wait on each other. See docs/design.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from cdrlog.core.cdr import CallReading, Cdr, affects_cdr, cdr_of, read_call
from cdrlog.core.events import CallEvent, Event
from cdrlog.core.rules import Status
from cdrlog.service import metrics
from cdrlog.store import deadletters, registry
from cdrlog.store.database import in_transaction, insert_ignoring_duplicates, read_only
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.registry import AgentFact
from cdrlog.store.tables import (
    CALL_EVENT_FOLDED,
    call_event,
    call_event_from_row,
    call_session,
    cdr,
    cdr_from_row,
    cdr_values,
    pairs_in,
)

Clock = Callable[[], datetime]
# A call with no hangup this long after it started lost its hangup (contract section 4).
DEFAULT_MAX_CALL_LENGTH = timedelta(hours=4)
CallKey = tuple[str, str]

__all__ = ["Accepted", "DeadLetter", "Ingestor", "Outcome"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event that passed `parse_event`, with the fields it arrived as."""

    event: Event
    fields: Mapping[str, str]
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Refolded:
    """What a refold wrote: per call, the CDR before (None: new) and after."""

    changes: list[tuple[CallKey, Cdr | None, Cdr]]


class SessionMissing(RuntimeError):
    """A call's `call_session` row vanished (a concurrent purge) before it was locked."""


SESSION_ATTEMPTS = 3


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"  # kept on local disk while the database is away


def call_of(event: Event) -> CallKey | None:
    """The call whose CDR the event can change, if any."""
    if isinstance(event, CallEvent) and affects_cdr(event):
        return (event.team, event.sessionid)
    return None


class Ingestor:
    """The write side: journal, agent registry, CDRs and dead letters."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock = utc_now,
        max_call_length: timedelta = DEFAULT_MAX_CALL_LENGTH,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.max_call_length = max_call_length
        self._insert_event = insert_ignoring_duplicates(engine, call_event)
        self._insert_session = insert_ignoring_duplicates(engine, call_session)
        self._registry = registry.Recorder(engine.dialect.name)
        # Where a call's session row can be created in the transaction that then locks
        # it: SQLite has one writer at a time, and PostgreSQL, inserting and locking in
        # key order, waits only on lower keys. InnoDB's duplicate check takes a shared
        # lock that two waiters then both try to upgrade (a deadlock), so MariaDB
        # creates them beforehand in a short transaction of their own (`_ensure_sessions`).
        self._sessions_inline = engine.dialect.name in ("sqlite", "postgresql")

    def ingest(self, accepted: Accepted) -> Outcome:
        """Store one event durably; returns once it is committed."""
        return self.ingest_many([accepted])[0]

    def ingest_many(self, batch: Sequence[Accepted]) -> list[Outcome]:
        """Store a batch in one transaction; one outcome per event, in order."""
        calls = sorted({key for a in batch if (key := call_of(a.event)) is not None})
        for attempt in range(SESSION_ATTEMPTS):
            if calls and not self._sessions_inline:
                self._ensure_sessions(calls)
            try:
                return in_transaction(self.engine, lambda c: self._ingest(c, batch, calls))
            except SessionMissing:
                # A purge removed the call's row between creating and locking it.
                if attempt == SESSION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _ingest(
        self, connection: Connection, batch: Sequence[Accepted], calls: list[CallKey]
    ) -> list[Outcome]:
        now = self.clock()
        if calls:
            # Lock first: journal inserts and folds then run one transaction per call.
            self.claim(connection, calls, now)
        outcomes = self._journal(connection, batch, now)
        stored = [a.event for a, o in zip(batch, outcomes, strict=True) if o is Outcome.STORED]
        self.learn_agents(connection, stored, now)
        changed = sorted({key for event in stored if (key := call_of(event)) is not None})
        if changed:
            self.refold(connection, changed, now)
        return outcomes

    def learn_agents(self, connection: Connection, events: Iterable[Event], now: datetime) -> None:
        """Record in the agent registry what these events say of agents."""
        facts = [fact for event in events if (fact := registry.fact_of(event)) is not None]
        if facts:
            self._registry.record(connection, registry.newest_facts(facts), now)

    def claim(self, connection: Connection, calls: Sequence[CallKey], now: datetime) -> None:
        """Create (where that is done in the same transaction) and lock these calls'
        session rows; `calls` sorted."""
        if self._sessions_inline:
            rows = [{"orgidentity": t, "sessionid": s, "created_at": now} for t, s in calls]
            connection.execute(self._insert_session, rows)
            if self.engine.dialect.name == "sqlite":
                return  # the only writer (BEGIN IMMEDIATE), and every row is there now
        self.lock(connection, calls)

    def lock(self, connection: Connection, calls: Sequence[CallKey]) -> None:
        """Take these calls' locks, in key order (the caller sorted `calls`)."""
        locked = connection.execute(
            select(call_session.c.id)
            .where(pairs_in(call_session.c.orgidentity, call_session.c.sessionid, calls))
            .order_by(call_session.c.orgidentity, call_session.c.sessionid)
            .with_for_update()
        ).all()
        if len(locked) != len(calls):
            raise SessionMissing("a call's session row is missing")

    def refold_calls(self, calls: Sequence[CallKey]) -> None:
        """Recompute these calls' CDRs from the journal, safely beside live ingest."""
        ordered = sorted(set(calls))
        if not ordered:
            return
        if not self._sessions_inline:
            self._ensure_sessions(ordered)

        def work(connection: Connection) -> None:
            now = self.clock()
            self.claim(connection, ordered, now)
            self.refold(connection, ordered, now)

        in_transaction(self.engine, work)

    def close_stale(self, limit: int = 500) -> int:
        """Close as `timeout` open calls older than the maximum call length; how many."""
        cutoff = self.clock() - self.max_call_length
        query = (
            select(cdr.c.orgidentity, cdr.c.diallogid)
            .where(cdr.c.status == Status.OPEN.value, cdr.c.starttime < cutoff)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            stale = [(row[0], row[1]) for row in read_only(connection).execute(query)]
        self.refold_calls(stale)
        return len(stale)

    def _journal(
        self, connection: Connection, batch: Sequence[Accepted], now: datetime
    ) -> list[Outcome]:
        keys = sorted({(a.event.team, a.fingerprint) for a in batch})
        known = {
            (row.orgidentity, row.fingerprint)
            for row in connection.execute(
                select(call_event.c.orgidentity, call_event.c.fingerprint).where(
                    pairs_in(call_event.c.orgidentity, call_event.c.fingerprint, keys)
                )
            )
        }
        outcomes: list[Outcome] = []
        rows: list[dict[str, Any]] = []
        for accepted in batch:
            key = (accepted.event.team, accepted.fingerprint)
            if key in known:
                outcomes.append(Outcome.DUPLICATE)
                continue
            known.add(key)
            rows.append(_journal_row(accepted, now))
            outcomes.append(Outcome.STORED)
        if rows:
            # Ignoring duplicates still: two batches may race on events that take no
            # call's lock (logins, link/hold); the journal keeps one of each.
            connection.execute(self._insert_event, rows)
        return outcomes

    def refold(
        self,
        connection: Connection,
        calls: Sequence[CallKey],
        now: datetime,
        events: Mapping[CallKey, list[CallEvent]] | None = None,
    ) -> Refolded:
        """Rewrite these calls' CDRs from their journal (or from `events`, when the
        caller has read and re-parsed it); the caller holds the calls' locks."""
        if events is None:
            events = self.journal_of(connection, calls)
        existing = {
            (row.orgidentity, row.diallogid): row
            for row in connection.execute(
                select(cdr).where(pairs_in(cdr.c.orgidentity, cdr.c.diallogid, calls))
            )
        }
        readings = {key: read_call(events.get(key, [])) for key in calls}
        phones = self._phones(connection, readings)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        changes: list[tuple[CallKey, Cdr | None, Cdr]] = []
        stale_before = now - self.max_call_length
        for key in calls:
            record = cdr_of(readings[key], phones.get(key[0], {}), stale_before)
            old = existing.get(key)
            if record is None:
                continue
            before = None if old is None else cdr_from_row(old)
            if before == record:
                continue
            changes.append((key, before, record))
            if old is None:
                inserts.append(cdr_values(record) | {"created_at": now, "updated_at": now})
            else:
                updates.append(cdr_values(record) | {"row_id": old.id, "updated_at": now})
        if inserts:
            connection.execute(cdr.insert(), inserts)
        if updates:
            columns: dict[str, Any] = {n: bindparam(n) for n in updates[0] if n != "row_id"}
            statement = update(cdr).where(cdr.c.id == bindparam("row_id")).values(columns)
            connection.execute(statement, updates)
        metrics.record_cdr_changes([(before, after) for _, before, after in changes])
        return Refolded(changes)

    def journal_of(
        self, connection: Connection, calls: Sequence[CallKey]
    ) -> dict[CallKey, list[CallEvent]]:
        """The journaled call events of these calls, as parsed when they arrived."""
        events: dict[CallKey, list[CallEvent]] = defaultdict(list)
        for row in connection.execute(
            select(*(call_event.c[name] for name in CALL_EVENT_FOLDED)).where(
                pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls),
                call_event.c.calltype.is_not(None),
            )
        ):
            events[(row.orgidentity, row.sessionid)].append(call_event_from_row(row))
        return events

    def _phones(
        self, connection: Connection, readings: Mapping[CallKey, CallReading]
    ) -> dict[str, dict[str, str]]:
        """The registry's phones, per team, for the agents whose calls need them."""
        needed: dict[str, set[str]] = defaultdict(set)
        for (team, _), reading in readings.items():
            if (agentno := reading.phone_wanted) is not None:
                needed[team].add(agentno)
        return {
            team: registry.phones(connection, team, numbers) for team, numbers in needed.items()
        }

    def _ensure_sessions(self, calls: list[CallKey]) -> None:
        # In a short transaction of its own: inserting and locking the same new row in
        # one transaction makes concurrent first events of a call deadlock on InnoDB.
        key = pairs_in(call_session.c.orgidentity, call_session.c.sessionid, calls)
        with self.engine.connect() as connection:
            found = read_only(connection).execute(
                select(call_session.c.orgidentity, call_session.c.sessionid).where(key)
            )
            missing = sorted(set(calls) - {(row[0], row[1]) for row in found})
        if missing:
            now = self.clock()
            rows = [{"orgidentity": t, "sessionid": s, "created_at": now} for t, s in missing]
            in_transaction(self.engine, lambda c: c.execute(self._insert_session, rows))

    def ping(self) -> None:
        """Raises unless the database answers."""
        with self.engine.connect() as connection:
            connection.execute(select(1))

    def set_agent(self, team: str, agentno: str, phone: str) -> None:
        """Bind an agent to a phone by hand; a later login still overrides it."""
        now = self.clock()
        fact = AgentFact(team, agentno, {"phone": phone}, now)
        facts = registry.newest_facts([fact])
        in_transaction(self.engine, lambda c: self._registry.record(c, facts, now))

    def dead_letter(self, letter: DeadLetter) -> int:
        """Keep a refused body for an operator; returns its id."""
        return deadletters.keep(self.engine, letter, self.clock())

    def resolve_dead_letter(self, letter_id: int, resolution: str) -> None:
        deadletters.resolve(self.engine, letter_id, resolution, self.clock())


def _journal_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    event = accepted.event
    call = event if isinstance(event, CallEvent) else None
    return {
        "orgidentity": event.team,
        "fingerprint": accepted.fingerprint,
        "sessionid": call.sessionid if call else None,
        # An event without its call type or source keeps NULL, as it arrived.
        "calltype": (call.calltype or None) if call else None,
        "source": (call.source or None) if call else None,
        "event": event.event,
        "event_time": event.event_time,
        "activenum": call.activenum if call else None,
        "agentno": event.agentno,
        "agentphone": event.agentphone,
        "hangupcause": call.hangupcause if call else None,
        "calleridnum": call.calleridnum if call else None,
        "didnumber": call.didnumber if call else None,
        "uniqueid": call.uniqueid if call else None,
        "agent_group": event.agent_group,
        "eventid": event.eventid,
        "fields": json.dumps(dict(accepted.fields), ensure_ascii=True, sort_keys=True),
        "received_at": now,
    }
