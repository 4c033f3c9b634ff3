"""The writer threads: a batch one event of which the database refuses is stored one by
one, and events spooled while the database was away are stored when it is back, the
ones refused then kept as dead letters. On every backend, with the database's own
errors: it refuses a journal row too large for it, and is away when nothing answers.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Connection, Engine, event, select, text
from sqlalchemy.exc import OperationalError

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.events import Rejection
from cdrlog.service.batcher import Batcher
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import JSON_TYPE, VALUE_REFUSED, Intake, item_bytes
from cdrlog.service.settings import Settings
from cdrlog.service.spool import Spool, SpoolUnavailable
from cdrlog.store.deadletters import KeptLetter, letter_from_row
from cdrlog.store.tables import call_event, cdr, dead_letter
from conftest import Backend
from support.legs import TEAM, Fields, accepted, leg, outbound

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)
WAIT = 20.0
# The most of an event's fields (as JSON) a journal row may hold, while `refusing` is on.
ROW_LIMIT = 4096


def oversized(sessionid: str) -> Fields:
    """A valid event (its note is within the check's bounds) whose journal row is over
    `ROW_LIMIT`."""
    return leg(sessionid, "CALLER", "ringing", 0, activenum="8001", note="x" * 5000)


@pytest.fixture
def refusing(backend: Backend, engine: Engine) -> Iterator[None]:
    """The database refuses a journal row over `ROW_LIMIT` with its own "too long"
    error (a DataError): SQLite by its length limit, lowered for the journal's insert;
    MariaDB and PostgreSQL by a trigger that raises their error for a value too long."""
    if backend.name == "sqlite":
        with _sqlite_limit(engine):
            yield
        return
    create, drop = _TRIGGERS[backend.name]
    with engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as connection:
            for statement in drop:
                connection.execute(text(statement))


_TRIGGERS = {
    "mariadb": (
        [
            "CREATE TRIGGER refuse_large_rows BEFORE INSERT ON call_event FOR EACH ROW"
            f" IF CHAR_LENGTH(NEW.fields) > {ROW_LIMIT} THEN SIGNAL SQLSTATE '22001'"
            " SET MYSQL_ERRNO = 1406, MESSAGE_TEXT = 'Data too long for column fields';"
            " END IF"
        ],
        ["DROP TRIGGER refuse_large_rows"],
    ),
    "postgresql": (
        [
            "CREATE FUNCTION refuse_large_rows() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'value too long for column fields'"
            " USING ERRCODE = 'string_data_right_truncation'; END $$",
            "CREATE TRIGGER refuse_large_rows BEFORE INSERT ON call_event FOR EACH ROW"
            f" WHEN (length(NEW.fields) > {ROW_LIMIT}) EXECUTE FUNCTION refuse_large_rows()",
        ],
        [
            "DROP TRIGGER refuse_large_rows ON call_event",
            "DROP FUNCTION refuse_large_rows()",
        ],
    ),
}


@contextmanager
def _sqlite_limit(engine: Engine) -> Iterator[None]:
    def limit(
        conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        journal = statement.startswith("INSERT") and " INTO call_event " in statement
        cursor.connection.setlimit(
            sqlite3.SQLITE_LIMIT_LENGTH, ROW_LIMIT if journal else _SQLITE_LENGTH
        )

    event.listen(engine, "before_cursor_execute", limit)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", limit)


with sqlite3.connect(":memory:") as _probe:
    _SQLITE_LENGTH = _probe.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
_probe.close()


@contextmanager
def database_away(engine: Engine, tmp_path: Path) -> Iterator[None]:
    """No database answers `engine` meanwhile: its connections are dropped, and a new
    one fails as the driver fails to reach a database that is not there (SQLite: a file
    in a missing directory; a server: a port nothing listens on)."""

    def elsewhere(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if dialect.name == "sqlite":
            return sqlite3.connect(tmp_path / "gone" / "cdrlog.db")
        return dialect.connect(*cargs, **(cparams | {"port": _closed_port()}))

    engine.dispose()
    event.listen(engine, "do_connect", elsewhere)
    try:
        yield
    finally:
        event.remove(engine, "do_connect", elsewhere)
        engine.dispose()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def batch_sizes() -> tuple[float, float]:
    """Group commits so far, and the events they held."""
    count = REGISTRY.get_sample_value("cdrlog_batch_events_count") or 0.0
    total = REGISTRY.get_sample_value("cdrlog_batch_events_sum") or 0.0
    return count, total


async def store_in_one_batch(
    batcher: Batcher, engine: Engine, first: Accepted, batch: Sequence[Accepted]
) -> list[Outcome | Rejection]:
    """Store `first`, and `batch` in the writer's next turn: the writer is held in
    `first`'s transaction until every event of `batch` is queued."""
    held, release = threading.Event(), threading.Event()

    def hold(*args: Any) -> None:
        if not held.is_set():
            held.set()
            release.wait(WAIT)

    event.listen(engine, "before_cursor_execute", hold)
    try:
        alone = asyncio.create_task(batcher.store(first))
        assert await asyncio.to_thread(held.wait, WAIT), "the writer never started"
        together = [asyncio.create_task(batcher.store(one)) for one in batch]
        await asyncio.sleep(0)  # each task has run up to its wait: all of `batch` is queued
    finally:
        release.set()
    results = await asyncio.wait_for(asyncio.gather(alone, *together), WAIT)
    event.remove(engine, "before_cursor_execute", hold)
    return results


async def store_each(batcher: Batcher, events: Sequence[Accepted]) -> list[Outcome | Rejection]:
    """Store the first event alone, then the rest at once (as concurrent requests)."""
    first = await batcher.store(events[0])
    rest = await asyncio.gather(*(batcher.store(one) for one in events[1:]))
    return [first, *rest]


def journal_of(engine: Engine, sessionid: str) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            select(call_event.c.id).where(call_event.c.sessionid == sessionid)
        )
        return len(rows.all())


def disposition(engine: Engine, sessionid: str) -> tuple[str, int] | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(cdr.c.disposition, cdr.c.billsec).where(cdr.c.diallogid == sessionid)
        ).first()
    return None if row is None else (row.disposition, row.billsec)


def dead_letters(engine: Engine) -> list[KeptLetter]:
    with engine.connect() as connection:
        rows = connection.execute(select(dead_letter).order_by(dead_letter.c.id)).mappings()
        return [letter_from_row(row) for row in rows]


@pytest.fixture
def intake(settings: Settings, engine: Engine) -> Intake:
    return Intake(settings, Ingestor(engine, clock=lambda: NOW))


# --- a batch the database refuses ---------------------------------------------------------


@pytest.mark.usefixtures("refusing")
def test_a_batch_the_database_refuses_is_stored_one_by_one(intake: Intake, engine: Engine) -> None:
    """One event of the batch is refused: the batch's transaction fails, each event is
    then stored alone, and only the refused one is answered as refused."""
    call = [accepted(fields) for fields in outbound("neighbours")]
    batch = [*call[:2], accepted(oversized("too-large")), *call[2:]]
    batcher = Batcher(intake, writers=1, max_batch=64)
    commits, events = batch_sizes()
    try:
        results = asyncio.run(
            store_in_one_batch(batcher, engine, accepted(outbound("first")[0]), batch)
        )
    finally:
        batcher.close()

    assert batch_sizes() == (commits + 2, events + 1 + len(batch))  # `first`, then one batch
    assert results == [Outcome.STORED] * 3 + [VALUE_REFUSED] + [Outcome.STORED] * 3
    assert journal_of(engine, "neighbours") == 5
    assert journal_of(engine, "too-large") == 0
    assert disposition(engine, "neighbours") == ("ANSWER", 88)


# --- the spool ----------------------------------------------------------------------------


@pytest.mark.usefixtures("refusing")
def test_spooled_events_are_stored_once_the_database_is_back_and_a_refused_one_kept(
    intake: Intake, engine: Engine, tmp_path: Path
) -> None:
    """While the database is away every event is spooled and answered as such; a drain
    then fails and keeps the spool. Once it is back, a drain stores the events and keeps
    the one the database refuses as a dead letter of its own, and the writer stops
    spooling."""
    spool = Spool(tmp_path / "spool")
    events = [accepted(fields) for fields in outbound("spooled")]
    events.insert(2, accepted(oversized("too-large")))
    batcher = Batcher(intake, writers=1, spool=spool)
    try:
        with database_away(engine, tmp_path):
            answers = asyncio.run(store_each(batcher, events))
            assert batcher.degraded.is_set()
            with pytest.raises(OperationalError):
                batcher.drain()
        assert answers == [Outcome.SPOOLED] * len(events)
        assert spool.depth() == len(events)

        assert batcher.drain() == len(events)
        assert (spool.depth(), batcher.degraded.is_set()) == (0, False)
        assert asyncio.run(batcher.store(accepted(outbound("after")[0]))) == Outcome.STORED
    finally:
        batcher.close()
        spool.close()

    assert journal_of(engine, "spooled") == 5
    assert disposition(engine, "spooled") == ("ANSWER", 88)
    [letter] = dead_letters(engine)
    refused = oversized("too-large")
    kept = (letter.path, letter.team, letter.content_type, letter.body, letter.truncated)
    assert kept == (f"/astercc/{TEAM}/events", TEAM, JSON_TYPE, item_bytes(refused), False)
    assert letter.reason == VALUE_REFUSED.as_dict()
    assert letter.resolved_at is None
    assert journal_of(engine, "too-large") == 0


def test_a_spooled_event_a_changed_setting_refuses_is_a_dead_letter(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Spooled by a process whose PBX zone was UTC; drained after a restart with the
    zone corrected to Asia/Shanghai, where its time falls before 1970: refused by the
    check, it is kept as a dead letter that says why, and the rest is stored."""
    directory = tmp_path / "spool"
    early = leg("early", "CALLER", "ringing", 0, activenum="8001") | {
        "eventTime": "1970-01-01 03:00:00"
    }
    events = [accepted(fields) for fields in [*outbound("restart"), early]]
    spooled = Spool(directory)
    before = Batcher(Intake(settings, Ingestor(engine)), writers=1, spool=spooled)
    try:
        with database_away(engine, tmp_path):
            assert asyncio.run(store_each(before, events)) == [Outcome.SPOOLED] * len(events)
    finally:
        before.close()
        spooled.close()

    corrected = Settings(database_url=settings.database_url, pbx_timezone="Asia/Shanghai")
    after = Batcher(Intake(corrected, Ingestor(engine, clock=lambda: NOW)), spool=Spool(directory))
    try:
        assert after.drain() == len(events)
    finally:
        after.close()

    assert journal_of(engine, "restart") == 5
    assert journal_of(engine, "early") == 0
    [letter] = dead_letters(engine)
    assert letter.body == item_bytes(early)
    assert letter.reason == {"eventTime": "'1970-01-01 03:00:00' is outside the years 1970 to 2199"}


def test_a_spooled_event_the_database_fails_to_store_is_a_dead_letter(
    settings: Settings, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that fails on drain with an error that is not an outage (here: any
    batch holding it raises) is kept as a dead letter; the rest of the spool is stored
    and the spool is empty, instead of the drain failing on it again and again."""
    directory = tmp_path / "spool"
    bad = leg("cursed", "CALLER", "ringing", 0, activenum="8001")
    events = [accepted(fields) for fields in [*outbound("around"), bad]]
    spooled = Spool(directory)
    before = Batcher(Intake(settings, Ingestor(engine)), writers=1, spool=spooled)
    try:
        with database_away(engine, tmp_path):
            assert asyncio.run(store_each(before, events)) == [Outcome.SPOOLED] * len(events)
    finally:
        before.close()
        spooled.close()

    ingestor = Ingestor(engine, clock=lambda: NOW)
    real = ingestor.ingest_many

    def failing(batch: Sequence[Accepted]) -> list[Outcome]:
        if any(getattr(one.event, "sessionid", None) == "cursed" for one in batch):
            raise RuntimeError("a bug meets this event")
        return real(batch)

    monkeypatch.setattr(ingestor, "ingest_many", failing)
    after = Batcher(Intake(settings, ingestor), spool=Spool(directory))
    try:
        assert after.drain() == len(events)
        assert after.drain() == 0
    finally:
        after.close()

    assert journal_of(engine, "around") == 5
    assert journal_of(engine, "cursed") == 0
    [letter] = dead_letters(engine)
    assert letter.body == item_bytes(bad)
    assert letter.reason == {"event": "the database could not store it: RuntimeError"}


def test_without_a_spool_an_outage_fails_the_requests(
    intake: Intake, engine: Engine, tmp_path: Path
) -> None:
    """A writer with nowhere to spool answers each waiting request with the error (the
    push URL then answers 503), and stores again once the database is back."""
    batcher = Batcher(intake, writers=1)
    try:
        with database_away(engine, tmp_path), pytest.raises(OperationalError):
            asyncio.run(batcher.store(accepted(outbound("unspooled")[0])))
        assert asyncio.run(batcher.store(accepted(outbound("unspooled")[0]))) == Outcome.STORED
    finally:
        batcher.close()


def test_when_the_spool_cannot_take_them_either_the_requests_fail(
    intake: Intake, engine: Engine, tmp_path: Path
) -> None:
    """Database away and spool unwritable (here: its directory would be under a file):
    nothing holds the event, so its request gets the spool's error (the push URL: 503)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    batcher = Batcher(intake, writers=1, spool=Spool(blocker / "spool"))
    try:
        with database_away(engine, tmp_path), pytest.raises(SpoolUnavailable):
            asyncio.run(batcher.store(accepted(outbound("nowhere")[0])))
    finally:
        batcher.close()
