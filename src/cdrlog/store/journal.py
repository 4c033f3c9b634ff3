"""The journal of accepted events, each call's lock row, and the CDR rows: the SQL that
ingest, refolds and rebuilds run inside their transactions.

Every call has one row in `call_session` (its lock): a transaction that changes a call's
CDR first locks the rows of every call it touches, in key order, so concurrent batches
cannot deadlock and whoever locks a call last sees all of its events committed before.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, func, select, update

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import CallEvent, Event
from cdrlog.core.record import Cdr
from cdrlog.core.rules import Status
from cdrlog.store import agenthours, registry
from cdrlog.store.database import in_transaction, insert_ignoring_duplicates, read_only
from cdrlog.store.tables import (
    AGENT_EVENT_PARSED,
    CALL_EVENT_FOLDED,
    CALL_EVENT_PARSED,
    call_event,
    call_event_from_row,
    call_session,
    cdr,
    cdr_from_row,
    pairs_in,
)

CallKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Journaled:
    """One journal row as a rebuild reads it: the fields as they arrived, and what was
    parsed of them when they did (`parsed`, by column; `stored`, a call's event)."""

    id: int
    team: str
    sessionid: str | None
    fields: dict[str, str]
    parsed: Mapping[str, Any]
    stored: CallEvent | None


def _journaled(row: Row[Any]) -> Journaled:
    values = row._mapping
    return Journaled(
        id=row.id,
        team=row.orgidentity,
        sessionid=row.sessionid,
        fields=json.loads(row.fields),
        parsed={name: values[name] for name in (*CALL_EVENT_PARSED, *AGENT_EVENT_PARSED)},
        stored=call_event_from_row(row) if row.sessionid is not None else None,
    )


class CallLockMissing(RuntimeError):
    """A call's lock row vanished (a concurrent purge) before it was locked."""


def journal_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    """The `call_event` row of an accepted event received at `now`."""
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


def load_rows(
    connection: Connection,
    events: Sequence[Mapping[str, Any]],
    locks: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
) -> None:
    """Insert whole calls as prepared (`journal_row`, lock rows, `cdr_values` rows): the
    bulk loader's path, which takes no locks and folds nothing because it writes calls
    that exist nowhere else yet, with the CDRs their events fold to."""
    connection.execute(call_event.insert(), list(events))
    connection.execute(call_session.insert(), list(locks))
    connection.execute(cdr.insert(), list(records))


class Journal:
    """The statements of one database, prepared once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert_lock = insert_ignoring_duplicates(engine, call_session)
        self._registry = registry.Recorder(engine.dialect)
        # Where a call's lock row can be created in the transaction that then locks it:
        # SQLite has one writer at a time, and PostgreSQL, inserting and locking in key
        # order, waits only on lower keys. InnoDB's duplicate check takes a shared lock
        # that two waiters then both try to upgrade (a deadlock), so MariaDB creates
        # them beforehand in a short transaction of their own (`create_locks`).
        self.locks_inline = engine.dialect.name in ("sqlite", "postgresql")

    def claim(self, connection: Connection, calls: Sequence[CallKey], now: datetime) -> None:
        """Create (where that is done in the same transaction) and take these calls'
        locks; `calls` sorted."""
        if self.locks_inline:
            rows = [{"orgidentity": t, "sessionid": s, "created_at": now} for t, s in calls]
            connection.execute(self._insert_lock, rows)
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
            raise CallLockMissing("a call's lock row is missing")

    def create_locks(self, calls: Sequence[CallKey], now: datetime) -> None:
        """Create the calls' missing lock rows, in a short transaction of their own:
        inserting and locking the same new row in one transaction makes concurrent
        first events of a call deadlock on InnoDB."""
        key = pairs_in(call_session.c.orgidentity, call_session.c.sessionid, calls)
        with self.engine.connect() as connection:
            found = read_only(connection).execute(
                select(call_session.c.orgidentity, call_session.c.sessionid).where(key)
            )
            missing = sorted(set(calls) - {(row[0], row[1]) for row in found})
        if missing:
            rows = [{"orgidentity": t, "sessionid": s, "created_at": now} for t, s in missing]
            in_transaction(self.engine, lambda c: c.execute(self._insert_lock, rows))

    def learn_agents(self, connection: Connection, events: Iterable[Event], now: datetime) -> None:
        """Record in the agent registry what these events say of agents, and mark the
        agents whose state events these are (`agenthours` works the marks out)."""
        events = list(events)
        facts = [fact for event in events if (fact := registry.fact_of(event)) is not None]
        if facts:
            self._registry.record(connection, registry.newest_facts(facts), now)
        agenthours.mark(connection, agenthours.spans(events))

    def set_agent(self, facts: Iterable[registry.AgentFact], now: datetime) -> None:
        newest = registry.newest_facts(facts)
        in_transaction(self.engine, lambda c: self._registry.record(c, newest, now))

    def events_of(
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

    def call_states(
        self, connection: Connection, calls: Sequence[CallKey]
    ) -> dict[CallKey, tuple[tuple[CallEvent, ...], frozenset[str], Cdr | None]]:
        """What ingest holds of each of these calls: its journaled events (as parsed
        when they arrived), their fingerprints, and its CDR."""
        events: dict[CallKey, list[CallEvent]] = defaultdict(list)
        fingerprints: dict[CallKey, set[str]] = defaultdict(set)
        for row in connection.execute(
            select(call_event.c.fingerprint, *(call_event.c[n] for n in CALL_EVENT_FOLDED)).where(
                pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls),
                call_event.c.calltype.is_not(None),
            )
        ):
            key = (row.orgidentity, row.sessionid)
            events[key].append(call_event_from_row(row))
            fingerprints[key].add(row.fingerprint)
        records = self.cdr_rows(connection, calls)
        return {
            key: (
                tuple(events.get(key, ())),
                frozenset(fingerprints.get(key, ())),
                None if (stored := records.get(key)) is None else cdr_from_row(stored),
            )
            for key in calls
        }

    def cdr_rows(self, connection: Connection, calls: Sequence[CallKey]) -> dict[CallKey, Row[Any]]:
        """The CDR rows these calls have now."""
        return {
            (row.orgidentity, row.diallogid): row
            for row in connection.execute(
                select(cdr).where(pairs_in(cdr.c.orgidentity, cdr.c.diallogid, calls))
            )
        }

    def write_cdrs(
        self,
        connection: Connection,
        inserts: Sequence[Mapping[str, Any]],
        updates: Sequence[Mapping[str, Any]],
    ) -> None:
        """Insert new CDR rows; update others by `row_id` (every update sets the same columns)."""
        if inserts:
            connection.execute(cdr.insert(), list(inserts))
        if updates:
            columns: dict[str, Any] = {n: bindparam(n) for n in updates[0] if n != "row_id"}
            columns["version"] = cdr.c.version + 1
            statement = update(cdr).where(cdr.c.id == bindparam("row_id")).values(columns)
            connection.execute(statement, list(updates))

    def open_calls_before(self, cutoff: datetime, limit: int) -> list[CallKey]:
        """Calls whose CDR is still open and started before `cutoff`."""
        query = (
            select(cdr.c.orgidentity, cdr.c.diallogid)
            .where(cdr.c.status == Status.OPEN.value, cdr.c.starttime < cutoff)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(row[0], row[1]) for row in read_only(connection).execute(query)]

    def ping(self) -> None:
        """Raises unless the database answers."""
        with self.engine.connect() as connection:
            connection.execute(select(1))

    # --- What a rebuild reads and rewrites -------------------------------------------

    def count_calls(self, team: str | None) -> int:
        """How many calls the journal holds (of `team`)."""
        query = select(func.count()).select_from(call_session)
        if team is not None:
            query = query.where(call_session.c.orgidentity == team)
        with self.engine.connect() as connection:
            return int(read_only(connection).execute(query).scalar_one())

    def calls_after(self, team: str | None, after: int, size: int) -> list[tuple[int, str, str]]:
        """Up to `size` calls (lock id, team, sessionid) with a lock id above `after`."""
        query = select(call_session.c.id, call_session.c.orgidentity, call_session.c.sessionid)
        query = query.where(call_session.c.id > after).order_by(call_session.c.id).limit(size)
        if team is not None:
            query = query.where(call_session.c.orgidentity == team)
        with self.engine.connect() as connection:
            return [(row[0], row[1], row[2]) for row in read_only(connection).execute(query)]

    def call_rows(self, connection: Connection, calls: Sequence[CallKey]) -> list[Journaled]:
        """The journal of these calls' events."""
        query = select(call_event).where(
            pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls),
            call_event.c.sessionid.is_not(None),
        )
        return [_journaled(row) for row in connection.execute(query)]

    def agent_rows_after(self, team: str | None, after: int, size: int) -> list[Journaled]:
        """Up to `size` journal rows of events of no call, with an id above `after`."""
        query = select(call_event).where(call_event.c.sessionid.is_(None), call_event.c.id > after)
        if team is not None:
            query = query.where(call_event.c.orgidentity == team)
        with self.engine.connect() as connection:
            found = read_only(connection).execute(query.order_by(call_event.c.id).limit(size))
            return [_journaled(row) for row in found]

    def rewrite_parsed(
        self, connection: Connection, row_id: int, values: Mapping[str, Any]
    ) -> None:
        """Replace the parsed columns of one journal row (its raw fields stay as sent)."""
        statement = update(call_event).where(call_event.c.id == row_id).values(dict(values))
        connection.execute(statement)
