"""Storing accepted events and keeping each call's CDR equal to the fold of its journal.

A batch of events (one, or many when a batch is pushed, replayed or group-committed) is
one transaction: lock the calls it touches (in key order, so concurrent batches cannot
deadlock) and read their versions, journal its events (an exact re-send is found by its
fingerprint and changes nothing), update the agent registry, then fold every touched
call's events and write its CDR and a new version. A call's events and CDR come from
this writer's memory when the version is the one it left (`callcache`), else they are
read back. Whoever takes a call's lock last sees every event of that call committed
before, so the stored CDR always equals the fold of the whole journal; calls never wait
on each other. Metrics are counted once the transaction has committed (a deadlock runs
it again). See docs/design.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.cdr import CallReading, affects_cdr, cdr_of, read_call
from cdrlog.core.events import CallEvent, Event
from cdrlog.core.hooks import change_kind
from cdrlog.core.record import Cdr
from cdrlog.service import metrics
from cdrlog.service.callcache import DEFAULT_CAPACITY, CallCache, CallState, new_version
from cdrlog.service.clock import Clock, utc_now
from cdrlog.service.hookwatch import HookWatch
from cdrlog.store import agenthours, deadletters
from cdrlog.store.database import in_transaction
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.hotpath import NEW, HotPath
from cdrlog.store.journal import CallKey, CallLockMissing, Journal, journal_row
from cdrlog.store.outbox import announce_cdrs
from cdrlog.store.registry import AgentFact
from cdrlog.store.tables import cdr_from_row, cdr_values

# A call with no hangup this long after it started lost its hangup (contract section 4).
DEFAULT_MAX_CALL_LENGTH = timedelta(hours=4)
LOCK_ATTEMPTS = 3
R = TypeVar("R")
# What one ingest transaction did: an outcome per event, the calls' states after it, and
# where each call's state came from (`metrics.CALL_STATES`).
Ingested = tuple[list[Outcome], dict[CallKey, CallState], Counter[str]]


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
        cache: CallCache | None = None,
        hooks: HookWatch | None = None,
    ) -> None:
        self.engine = engine
        self.hooks = hooks
        self.clock = clock
        self.max_call_length = max_call_length
        self.journal = Journal(engine)
        self.hot = HotPath(engine.dialect.name)
        self.cache = CallCache(DEFAULT_CAPACITY) if cache is None else cache

    def ingest(self, accepted: Accepted) -> Outcome:
        """Store one event durably; returns once it is committed."""
        return self.ingest_many([accepted])[0]

    def ingest_many(self, batch: Sequence[Accepted]) -> list[Outcome]:
        """Store a batch in one transaction; one outcome per event, in order."""
        calls = sorted({key for a in batch if (key := call_of(a.event)) is not None})
        self.look_for_hooks()

        def work(connection: Connection) -> tuple[Ingested, Refolded]:
            return self._ingest(connection, batch, calls)

        (outcomes, states, sources), refolded = self._locked(calls, work)
        self.cache.keep(states)
        _count(refolded)
        for source, count in sources.items():
            metrics.CALL_STATES.labels(source).inc(count)
        return outcomes

    def refold_calls(self, calls: Sequence[CallKey]) -> None:
        """Recompute these calls' CDRs from the journal, safely beside live ingest."""
        ordered = sorted(set(calls))
        if not ordered:
            return
        self.look_for_hooks()

        def work(connection: Connection) -> tuple[None, Refolded]:
            now = self.clock()
            self.journal.claim(connection, ordered, now)
            return None, self.refold(connection, ordered, now)

        _, refolded = self._locked(ordered, work)
        _count(refolded)

    def keep_agents_up(self) -> int:
        """Work out the agents' hours and presence that ingest marked (`agenthours`);
        how many marks were taken. Readers of them do it too, first."""
        return agenthours.keep_up(self.engine)

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
        self.hot.stamp(connection, calls, new_version())
        self._announce(connection, changes, now)
        return Refolded(changes)

    def stamp(self, connection: Connection, calls: Sequence[CallKey]) -> None:
        """Mark these calls (locked) changed by other means than ingest (a rebuild's new
        parse of their events): every writer then reads them back."""
        self.hot.stamp(connection, calls, new_version())

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
    ) -> tuple[Ingested, Refolded]:
        now = self.clock()
        sources: Counter[str] = Counter()
        states = self._states(connection, calls, now, sources) if calls else {}
        outcomes, rows, fresh = self._sort_out(connection, batch, states)
        if rows:
            # Ignoring duplicates still: two batches may race on events that take no
            # call's lock (logins, link/hold); the journal keeps one of each.
            self.hot.append(connection, [journal_row(a, now) for a in rows])
        self.journal.learn_agents(connection, [a.event for a in rows], now)
        if not fresh:
            return (outcomes, states, sources), Refolded([])
        changed = sorted(fresh)
        version = new_version()
        after: dict[CallKey, CallState] = {}
        for key in changed:
            state = states[key]
            events = state.events + tuple(_call_event(a.event) for a in fresh[key])
            fingerprints = state.fingerprints | {a.fingerprint for a in fresh[key]}
            after[key] = CallState(version, events, fingerprints, state.cdr)
        refolded, records = self._fold(connection, after, now)
        for key, record in records.items():
            after[key] = replace(after[key], cdr=record)
        self.hot.stamp(connection, changed, version)
        return (outcomes, states | after, sources), refolded

    def _states(
        self, connection: Connection, calls: list[CallKey], now: datetime, sources: Counter[str]
    ) -> dict[CallKey, CallState]:
        """Lock these calls (sorted) and give the state each has now: from memory when
        its version is the one this writer left, else read back; `sources` counts which."""
        if self.journal.locks_inline:
            self.hot.create_locks(connection, calls, now)
        versions = self.hot.lock(connection, calls)
        if len(versions) != len(calls):
            raise CallLockMissing("a call's lock row is missing")
        states: dict[CallKey, CallState] = {}
        misses: list[CallKey] = []
        for key in calls:
            state = self.cache.get(key, versions[key])
            if state is None:
                misses.append(key)
            else:
                states[key] = state
                sources["new" if versions[key] == NEW else "memory"] += 1
        sources["read_back"] += len(misses)
        if misses:
            for key, (events, fingerprints, record) in self.journal.call_states(
                connection, misses
            ).items():
                states[key] = CallState(versions[key], events, fingerprints, record)
        return states

    def _sort_out(
        self, connection: Connection, batch: Sequence[Accepted], states: Mapping[CallKey, CallState]
    ) -> tuple[list[Outcome], list[Accepted], dict[CallKey, list[Accepted]]]:
        """Each event stored or a duplicate: a call's by the fingerprints of its state,
        any other by the journal's. The events to journal, and per call its new ones."""
        others = {(a.event.team, a.fingerprint) for a in batch if call_of(a.event) is None}
        known = self.hot.known(connection, others) if others else set()
        outcomes: list[Outcome] = []
        rows: list[Accepted] = []
        fresh: dict[CallKey, list[Accepted]] = {}
        taken: set[tuple[str, str]] = set()
        for accepted in batch:
            key = (accepted.event.team, accepted.fingerprint)
            call = call_of(accepted.event)
            if key in taken or (
                accepted.fingerprint in states[call].fingerprints
                if call is not None
                else key in known
            ):
                outcomes.append(Outcome.DUPLICATE)
                continue
            taken.add(key)
            rows.append(accepted)
            if call is not None:
                fresh.setdefault(call, []).append(accepted)
            outcomes.append(Outcome.STORED)
        return outcomes, rows, fresh

    def _fold(
        self, connection: Connection, states: Mapping[CallKey, CallState], now: datetime
    ) -> tuple[Refolded, dict[CallKey, Cdr]]:
        """Write the CDRs these states fold to, where they changed; the new records."""
        readings = {key: read_call(list(state.events)) for key, state in states.items()}
        phones = self._phones(connection, readings)
        stale_before = now - self.max_call_length
        rows: list[dict[str, object]] = []
        changes: list[tuple[CallKey, Cdr | None, Cdr]] = []
        records: dict[CallKey, Cdr] = {}
        for key, state in states.items():
            record = cdr_of(readings[key], phones.get(key[0], {}), stale_before)
            if record is None or record == state.cdr:
                continue
            records[key] = record
            changes.append((key, state.cdr, record))
            rows.append(cdr_values(record) | {"created_at": now, "updated_at": now})
        self.hot.write_cdrs(connection, rows)
        self._announce(connection, changes, now)
        return Refolded(changes), records

    def look_for_hooks(self) -> None:
        """Bring what is known of the hooks up to date (at most every few seconds);
        before a transaction, never in one: it reads on a connection of its own."""
        if self.hooks is not None:
            self.hooks.subscriptions()

    def _announce(
        self,
        connection: Connection,
        changes: Sequence[tuple[CallKey, Cdr | None, Cdr]],
        now: datetime,
    ) -> None:
        """Write these CDR changes to the outbox, in their transaction, for the teams
        some hook takes."""
        if self.hooks is None or not changes:
            return
        announce_cdrs(
            connection,
            [
                (team, session, change_kind(before, after).value)
                for (team, session), before, after in changes
                if self.hooks.wants(team)
            ],
            now,
        )

    def _locked(
        self, calls: Sequence[CallKey], work: Callable[[Connection], tuple[R, Refolded]]
    ) -> tuple[R, Refolded]:
        """Run `work` in one transaction that may lock `calls`; again when a purge took
        a call's lock row away between its creation and its locking."""
        for attempt in range(LOCK_ATTEMPTS):
            # A call this writer holds has its lock row (a purge since is found below).
            missing = calls if attempt else [key for key in calls if key not in self.cache]
            if missing and not self.journal.locks_inline:
                self.journal.create_locks(missing, self.clock())
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
        wanted = {
            (team, agentno)
            for (team, _), reading in readings.items()
            if (agentno := reading.phone_wanted) is not None
        }
        return self.hot.phones(connection, wanted) if wanted else {}


def _call_event(event: Event) -> CallEvent:
    # Only a call's events are folded; its times are aware, so a fold from memory and
    # one from the journal (times read back in UTC) compare the same instants.
    assert isinstance(event, CallEvent)
    return event


def _count(refolded: Refolded) -> None:
    """Count what a committed transaction changed."""
    metrics.record_cdr_changes([(before, after) for _, before, after in refolded.changes])
