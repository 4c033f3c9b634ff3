"""Storing accepted events and keeping each call's CDR equal to the fold of its journal.

A batch of events (one, or many when a batch is pushed, replayed or group-committed) is
one transaction: lock the calls it touches (`Journal.claim`, in key order, so concurrent
batches cannot deadlock), journal its events (an exact re-send is found by its
fingerprint and changes nothing), update the agent registry, then read every touched
call's events back and write the fold. Whoever takes a call's lock last sees every
event of that call committed before, so the stored CDR always equals the fold of the
whole journal; calls never wait on each other. Metrics are counted once the
transaction has committed (a deadlock runs it again). See docs/design.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.cdr import CallReading, affects_cdr, cdr_of, read_call
from cdrlog.core.events import CallEvent, Event
from cdrlog.core.record import Cdr
from cdrlog.service import metrics
from cdrlog.service.clock import Clock, utc_now
from cdrlog.store import deadletters, registry
from cdrlog.store.database import in_transaction
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.journal import CallKey, CallLockMissing, Journal
from cdrlog.store.registry import AgentFact
from cdrlog.store.tables import cdr_from_row, cdr_values

# A call with no hangup this long after it started lost its hangup (contract section 4).
DEFAULT_MAX_CALL_LENGTH = timedelta(hours=4)
LOCK_ATTEMPTS = 3
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Refolded:
    """What a refold wrote: per call, the CDR before (None: new) and after."""

    changes: list[tuple[CallKey, Cdr | None, Cdr]]


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
        self.journal = Journal(engine)

    def ingest(self, accepted: Accepted) -> Outcome:
        """Store one event durably; returns once it is committed."""
        return self.ingest_many([accepted])[0]

    def ingest_many(self, batch: Sequence[Accepted]) -> list[Outcome]:
        """Store a batch in one transaction; one outcome per event, in order."""
        calls = sorted({key for a in batch if (key := call_of(a.event)) is not None})
        outcomes, refolded = self._locked(calls, lambda c: self._ingest(c, batch, calls))
        _count(refolded)
        return outcomes

    def refold_calls(self, calls: Sequence[CallKey]) -> None:
        """Recompute these calls' CDRs from the journal, safely beside live ingest."""
        ordered = sorted(set(calls))
        if not ordered:
            return

        def work(connection: Connection) -> tuple[None, Refolded]:
            now = self.clock()
            self.journal.claim(connection, ordered, now)
            return None, self.refold(connection, ordered, now)

        _, refolded = self._locked(ordered, work)
        _count(refolded)

    def close_stale(self, limit: int = 500) -> int:
        """Close as `timeout` open calls older than the maximum call length; how many."""
        stale = self.journal.open_calls_before(self.clock() - self.max_call_length, limit)
        self.refold_calls(stale)
        return len(stale)

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
            events = self.journal.events_of(connection, calls)
        existing = self.journal.cdr_rows(connection, calls)
        readings = {key: read_call(events.get(key, [])) for key in calls}
        phones = self._phones(connection, readings)
        inserts: list[dict[str, object]] = []
        updates: list[dict[str, object]] = []
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
        self.journal.write_cdrs(connection, inserts, updates)
        return Refolded(changes)

    def learn_agents(self, connection: Connection, events: Sequence[Event], now: datetime) -> None:
        self.journal.learn_agents(connection, events, now)

    def ping(self) -> None:
        """Raises unless the database answers."""
        self.journal.ping()

    def set_agent(self, team: str, agentno: str, phone: str) -> None:
        """Bind an agent to a phone by hand; a later login still overrides it."""
        now = self.clock()
        self.journal.set_agent([AgentFact(team, agentno, {"phone": phone}, now)], now)

    def dead_letter(self, letter: DeadLetter) -> int:
        """Keep a refused body for an operator; returns its id."""
        return deadletters.keep(self.engine, letter, self.clock())

    def resolve_dead_letter(self, letter_id: int, resolution: str) -> None:
        deadletters.resolve(self.engine, letter_id, resolution, self.clock())

    def _ingest(
        self, connection: Connection, batch: Sequence[Accepted], calls: list[CallKey]
    ) -> tuple[list[Outcome], Refolded]:
        now = self.clock()
        if calls:
            # Lock first: journal inserts and folds then run one transaction per call.
            self.journal.claim(connection, calls, now)
        outcomes = self.journal.append(connection, batch, now)
        stored = [a.event for a, o in zip(batch, outcomes, strict=True) if o is Outcome.STORED]
        self.journal.learn_agents(connection, stored, now)
        changed = sorted({key for event in stored if (key := call_of(event)) is not None})
        refolded = self.refold(connection, changed, now) if changed else Refolded([])
        return outcomes, refolded

    def _locked(
        self, calls: Sequence[CallKey], work: Callable[[Connection], tuple[R, Refolded]]
    ) -> tuple[R, Refolded]:
        """Run `work` in one transaction that may lock `calls`; again when a purge took
        a call's lock row away between its creation and its locking."""
        for attempt in range(LOCK_ATTEMPTS):
            if calls and not self.journal.locks_inline:
                self.journal.create_locks(calls, self.clock())
            try:
                return in_transaction(self.engine, work)
            except CallLockMissing:
                if attempt == LOCK_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _phones(
        self, connection: Connection, readings: Mapping[CallKey, CallReading]
    ) -> dict[str, dict[str, str]]:
        """The registry's phones, per team, for the agents whose calls need them."""
        needed: dict[str, set[str]] = {}
        for (team, _), reading in readings.items():
            if (agentno := reading.phone_wanted) is not None:
                needed.setdefault(team, set()).add(agentno)
        return {
            team: registry.phones(connection, team, numbers) for team, numbers in needed.items()
        }


def _count(refolded: Refolded) -> None:
    """Count what a committed transaction changed."""
    metrics.record_cdr_changes([(before, after) for _, before, after in refolded.changes])
