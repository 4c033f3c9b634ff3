"""A write transaction runs again, from the start, after the database's transient errors
(a deadlock, a lock wait timeout, SQLite's "database is locked") and after a purge took
a call's lock row away under it; each event is then stored once and the CDR is right.

Every error here is the database's own, forced with a second connection that holds
what the ingest needs, as another process would: no error is built by hand.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.engine import ExceptionContext, make_url

from cdrlog.core.accepted import Outcome
from cdrlog.service.ingest import Ingestor
from cdrlog.store.database import make_engine
from cdrlog.store.purge import PurgeCounts, purge
from cdrlog.store.tables import call_event, call_session, cdr, dead_letter
from conftest import Backend
from support.legs import T0, TEAM, Fields, accepted, outbound

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
SERVERS = ["mariadb", "postgresql"]
WAIT = 20.0

# The CDR of `outbound(...)`, in the columns a retry could get wrong.
ANSWERED = {
    "starttime": T0 + timedelta(seconds=5),
    "answertime": T0 + timedelta(seconds=12),
    "endtime": T0 + timedelta(seconds=100),
    "duration": 95,
    "billsec": 88,
    "disposition": "ANSWER",
    "status": "closed",
}


def stored_cdr(engine: Engine, sessionid: str) -> dict[str, Any] | None:
    """The call's CDR in the columns a fold determines, or None."""
    columns = [
        c for c in cdr.c if c.name not in ("id", "diallogid", "created_at", "updated_at", "version")
    ]
    with engine.connect() as connection:
        row = connection.execute(select(*columns).where(cdr.c.diallogid == sessionid)).first()
    return None if row is None else dict(row._mapping)


def answered(engine: Engine, sessionid: str) -> dict[str, Any] | None:
    """The call's CDR in `ANSWERED`'s columns: `ANSWERED` when the retry got it right."""
    record = stored_cdr(engine, sessionid)
    return None if record is None else {name: record[name] for name in ANSWERED}


def journaled(engine: Engine, sessionid: str) -> list[str]:
    """The call's journal rows, as their fingerprints: an event stored twice shows twice."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(call_event.c.fingerprint).where(call_event.c.sessionid == sessionid)
        )
        return sorted(row.fingerprint for row in rows)


def fingerprints(events: Sequence[Fields]) -> list[str]:
    return sorted(accepted(fields).fingerprint for fields in events)


@contextmanager
def database_errors(engine: Engine) -> Iterator[list[BaseException]]:
    """The driver errors `engine`'s connections meet meanwhile, as they met them."""
    seen: list[BaseException] = []

    def record(context: ExceptionContext) -> None:
        seen.append(context.original_exception)

    event.listen(engine, "handle_error", record)
    try:
        yield seen
    finally:
        event.remove(engine, "handle_error", record)


def error_code(error: BaseException) -> object:
    """MariaDB's error number, PostgreSQL's SQLSTATE, or SQLite's message."""
    if isinstance(error, sqlite3.Error):
        return str(error)
    sqlstate = getattr(error, "sqlstate", None)
    args: tuple[Any, ...] = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return sqlstate


def waiting_for_a_lock(probe: Connection) -> bool:
    """Whether a transaction on this database waits for a row lock now."""
    if probe.dialect.name == "postgresql":
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    else:
        query = (
            "SELECT count(*) FROM information_schema.innodb_trx t"
            " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
            " WHERE p.db = DATABASE() AND t.trx_state = 'LOCK WAIT'"
        )
    waiting = int(probe.execute(text(query)).scalar_one())
    probe.rollback()
    return waiting > 0


def wait_for_a_lock_wait(engine: Engine, running: Future[Any]) -> None:
    with engine.connect() as probe:
        deadline = time.monotonic() + WAIT
        while not waiting_for_a_lock(probe):
            if running.done():
                running.result()  # its error, if it failed
                raise AssertionError("the ingest finished without waiting for the lock")
            if time.monotonic() > deadline:
                raise AssertionError(f"the ingest did not wait for the lock in {WAIT} s")
            time.sleep(0.01)


@pytest.fixture
def rival(backend: Backend) -> Iterator[Engine]:
    """Another process's engine on the same database."""
    other = make_engine(backend.url)
    yield other
    other.dispose()


def lock_call(connection: Connection, sessionid: str) -> None:
    connection.execute(
        select(call_session.c.id)
        .where(call_session.c.orgidentity == TEAM, call_session.c.sessionid == sessionid)
        .with_for_update()
    ).one()


def make_heavier(connection: Connection, rows: int = 200) -> None:
    """Give a transaction more undo than an ingest's: InnoDB then chooses the ingest as
    a deadlock's victim (it rolls back the transaction with the least work done)."""
    letter = {"received_at": NOW, "path": "/rival", "body": b"", "truncated": False}
    connection.execute(dead_letter.insert(), [letter | {"reason": "{}"}] * rows)


# --- transient errors ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_a_deadlock_midway_runs_the_transaction_again(engine: Engine, rival: Engine) -> None:
    """The ingest has locked the call, journaled its events and recorded its agent when
    it waits for the CDR row another transaction holds, which then waits for the call:
    the database aborts the ingest, and the run from the start stores everything once."""
    events = outbound("deadlock")
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest_many([accepted(fields) for fields in events[:2]])  # the CDR row exists
    with rival.connect() as other, database_errors(engine) as seen, ThreadPoolExecutor(1) as pool:
        if other.dialect.name != "postgresql":
            make_heavier(other)
        other.execute(select(cdr.c.id).where(cdr.c.diallogid == "deadlock").with_for_update())
        running = pool.submit(ingestor.ingest_many, [accepted(fields) for fields in events[2:]])
        wait_for_a_lock_wait(engine, running)
        # Closes the cycle. PostgreSQL's detector runs in the transaction that has waited
        # longest (the ingest's) and aborts it; InnoDB aborts the lighter one.
        lock_call(other, "deadlock")
        other.rollback()
        outcomes = running.result(timeout=WAIT)

    assert outcomes == [Outcome.STORED] * 3
    assert [error_code(error) for error in seen] in ([1213], ["40P01"])
    assert journaled(engine, "deadlock") == fingerprints(events)
    assert answered(engine, "deadlock") == ANSWERED


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_a_lock_wait_timeout_runs_the_transaction_again(backend: Backend, rival: Engine) -> None:
    """InnoDB gives up waiting for a call's lock after `innodb_lock_wait_timeout` (cut
    to 1 s here) with error 1205: the ingest's transaction is rolled back and run again."""
    impatient = make_engine(backend.url)

    @event.listens_for(impatient, "connect")
    def one_second(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")

    events = outbound("timeout")
    ingestor = Ingestor(impatient, clock=lambda: NOW)
    ingestor.ingest_many([accepted(fields) for fields in events[:2]])
    other = rival.connect()
    lock_call(other, "timeout")

    def let_go(context: ExceptionContext) -> None:
        other.rollback()  # the holder finishes once the ingest has given up waiting

    event.listen(impatient, "handle_error", let_go)
    try:
        with database_errors(impatient) as seen:
            outcomes = ingestor.ingest_many([accepted(fields) for fields in events[2:]])
    finally:
        other.close()
        impatient.dispose()

    assert outcomes == [Outcome.STORED] * 3
    assert [error_code(error) for error in seen] == [1205]
    assert journaled(rival, "timeout") == fingerprints(events)
    assert answered(rival, "timeout") == ANSWERED


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_locked_sqlite_database_runs_the_transaction_again(
    backend: Backend, engine: Engine
) -> None:
    """Another process holds SQLite's write lock longer than the busy timeout (cut to
    50 ms here): BEGIN IMMEDIATE fails with "database is locked", and runs again."""
    events = outbound("locked")
    ingestor = Ingestor(engine, clock=lambda: NOW)
    ingestor.ingest_many([accepted(fields) for fields in events[:2]])
    path = make_url(backend.url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def impatient(dbapi_connection: sqlite3.Connection, record: Any, proxy: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout = 50")

    def let_go(context: ExceptionContext) -> None:
        other.rollback()

    event.listen(engine, "checkout", impatient)
    event.listen(engine, "handle_error", let_go)
    try:
        with database_errors(engine) as seen:
            outcomes = ingestor.ingest_many([accepted(fields) for fields in events[2:]])
    finally:
        event.remove(engine, "handle_error", let_go)
        event.remove(engine, "checkout", impatient)
        other.close()

    assert outcomes == [Outcome.STORED] * 3
    assert [error_code(error) for error in seen] == ["database is locked"]
    assert journaled(engine, "locked") == fingerprints(events)
    assert answered(engine, "locked") == ANSWERED


# --- a purge under the ingest -------------------------------------------------------------


@contextmanager
def purge_before_locking(
    engine: Engine, purge_now: Callable[[], PurgeCounts]
) -> Iterator[tuple[list[PurgeCounts], list[str]]]:
    """Just before `engine` takes a call's lock for the first time, a purge runs to its
    end in another transaction. Yields the purge's counts and the lock statements run."""
    purged: list[PurgeCounts] = []
    locks: list[str] = []

    def before(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if "call_session" in statement and "FOR UPDATE" in statement:
            locks.append(statement)
            if not purged:
                purged.append(purge_now())

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield purged, locks
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_a_purge_between_lock_creation_and_locking_runs_the_ingest_again(
    engine: Engine, rival: Engine
) -> None:
    """A call's late hangups arrive as retention deletes the call: its lock row is there
    when the ingest looks (MariaDB: creates it beforehand; PostgreSQL: inserts it, or
    finds it there), and gone when it locks. The ingest runs again, makes the row anew
    and stores the hangups: the call is then what those events alone make it."""
    events = outbound("purged")
    earlier, late = events[:3], events[3:]
    long_ago = NOW - timedelta(days=400)
    Ingestor(engine, clock=lambda: long_ago).ingest_many([accepted(f) for f in earlier])
    ingestor = Ingestor(engine, clock=lambda: NOW)
    cut = T0 + timedelta(days=1)  # after the call started, before the late events came

    with purge_before_locking(engine, lambda: purge(rival, cut)) as (purged, locks):
        outcomes = ingestor.ingest_many([accepted(fields) for fields in late])

    assert [(p.cdr, p.call_event, p.call_session) for p in purged] == [(1, 3, 1)]
    assert len(locks) == 2  # the first found no row: the second, after the retry, did
    assert outcomes == [Outcome.STORED] * 2
    assert journaled(engine, "purged") == fingerprints(late)
    with engine.connect() as connection:
        sessions = connection.execute(
            select(func.count())
            .select_from(call_session)
            .where(call_session.c.sessionid == "purged")
        ).scalar_one()
    assert sessions == 1
    # Nothing of the late events is lost: the same as a call that only ever had them.
    control = [fields | {"sessionid": "control"} for fields in late]
    ingestor.ingest_many([accepted(fields) for fields in control])
    after = stored_cdr(engine, "purged")
    assert after is not None
    assert after["disposition"] == "NOANSWER"  # its answer went with the purge
    assert after == stored_cdr(engine, "control")
