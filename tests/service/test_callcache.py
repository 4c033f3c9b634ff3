"""A writer's memory of calls is used only under the version it left: another writer's
events, a rebuild, a purge or a bulk load in between make it read the call back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, delete, select

from cdrlog.core.events import CallEvent
from cdrlog.service.callcache import EMPTY, CallCache, CallState, new_version
from cdrlog.service.ingest import Ingestor
from cdrlog.service.rebuild import Selection, rebuild
from cdrlog.store.hotpath import NEW, READ_BACK
from cdrlog.store.tables import call_event, call_session, cdr
from support.legs import T0, TEAM, accepted, outbound

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=UTC)


def state(version: int, sessionid: str = "s") -> CallState:
    event = CallEvent(TEAM, sessionid, "dialout", "CALLER", "ringing", NOW)
    return CallState(version, (event,), frozenset({"f"}), None)


def test_a_state_is_found_only_under_its_own_version() -> None:
    cache = CallCache(8)
    cache.keep({(TEAM, "s"): state(7)})
    assert cache.get((TEAM, "s"), 7) == state(7)
    assert cache.get((TEAM, "s"), 8) is None
    assert cache.get((TEAM, "other"), 7) is None


def test_a_new_call_is_empty_and_an_unstamped_one_is_read_back() -> None:
    cache = CallCache(8)
    cache.keep({(TEAM, "s"): state(READ_BACK)})
    assert cache.get((TEAM, "s"), NEW) is EMPTY
    assert cache.get((TEAM, "s"), READ_BACK) is None


def test_the_least_recently_used_call_goes_first() -> None:
    cache = CallCache(2)
    cache.keep({(TEAM, "a"): state(3, "a"), (TEAM, "b"): state(4, "b")})
    assert cache.get((TEAM, "a"), 3) is not None  # "b" is now the least recently used
    cache.keep({(TEAM, "c"): state(5, "c")})
    assert (TEAM, "a") in cache
    assert (TEAM, "c") in cache
    assert (TEAM, "b") not in cache
    cache.forget([(TEAM, "a")])
    assert len(cache) == 1


def test_capacity_zero_keeps_nothing() -> None:
    cache = CallCache(0)
    cache.keep({(TEAM, "s"): state(3)})
    assert len(cache) == 0


def test_versions_are_random_and_never_one_with_a_meaning() -> None:
    versions = {new_version() for _ in range(1000)}
    assert len(versions) == 1000
    assert not versions & {NEW, READ_BACK}
    assert all(0 < v < 2**63 for v in versions)


# --- On the database -----------------------------------------------------------------


def version_of(engine: Engine, sessionid: str) -> int:
    with engine.connect() as connection:
        query = select(call_session.c.version).where(call_session.c.sessionid == sessionid)
        return int(connection.execute(query).scalar_one())


def billsec(engine: Engine, sessionid: str) -> int | None:
    with engine.connect() as connection:
        query = select(cdr.c.billsec).where(cdr.c.diallogid == sessionid)
        return connection.execute(query).scalar_one_or_none()


def test_a_call_another_writer_changed_is_read_back(engine: Engine) -> None:
    """Writer A holds the call's first events; writer B stores its answer; A then stores
    the hangup: its CDR must count B's answer, which A never saw."""
    first, second = Ingestor(engine, clock=lambda: NOW), Ingestor(engine, clock=lambda: NOW)
    events = [accepted(fields) for fields in outbound("shared")]
    ringing, answer, hangups = events[:2], events[2], events[3:]
    first.ingest_many(ringing)
    held = version_of(engine, "shared")
    assert first.cache.get((TEAM, "shared"), held) is not None
    second.ingest_many([answer])
    assert version_of(engine, "shared") != held
    first.ingest_many(hangups)
    reference = Ingestor(engine, clock=lambda: NOW, cache=CallCache(0))
    stored = billsec(engine, "shared")
    reference.refold_calls([(TEAM, "shared")])
    assert billsec(engine, "shared") == stored
    assert stored == 88
    # A re-send is still known for what it is, whichever writer sees it.
    assert [o.value for o in second.ingest_many(events)] == ["duplicate"] * 5


def test_every_event_stamps_a_new_version_and_the_writer_keeps_it(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: NOW)
    seen = []
    held: CallState | None = None
    for fields in outbound("stamped"):
        ingestor.ingest_many([accepted(fields)])
        seen.append(version_of(engine, "stamped"))
        held = ingestor.cache.get((TEAM, "stamped"), seen[-1])
        assert held is not None
    assert held is not None
    assert held.cdr is not None
    assert held.cdr.billsec == 88
    assert len(set(seen)) == len(seen)
    assert not set(seen) & {NEW, READ_BACK}


def test_a_rebuild_or_a_sweep_makes_writers_read_the_call_back(engine: Engine) -> None:
    ingestor = Ingestor(engine, clock=lambda: T0 + timedelta(minutes=1))
    ingestor.ingest_many([accepted(f) for f in outbound("rebuilt")[:2]])
    before = version_of(engine, "rebuilt")
    rebuild(ingestor, ZoneInfo("UTC"), Selection())
    assert version_of(engine, "rebuilt") != before
    assert ingestor.cache.get((TEAM, "rebuilt"), version_of(engine, "rebuilt")) is None
    later = Ingestor(engine, clock=lambda: T0 + timedelta(days=1))
    swept = version_of(engine, "rebuilt")
    assert later.close_stale() == 1
    assert version_of(engine, "rebuilt") != swept


def test_a_purged_call_starts_again_empty(engine: Engine) -> None:
    """Retention deletes a call's journal, CDR and lock row together: a late event of it
    finds a new lock row (version NEW) and is folded alone, not onto what was held."""
    ingestor = Ingestor(engine, clock=lambda: NOW)
    events = [accepted(f) for f in outbound("purged")]
    ingestor.ingest_many(events[:-1])
    with engine.begin() as connection:
        for table, column in (
            (call_event, call_event.c.sessionid),
            (cdr, cdr.c.diallogid),
            (call_session, call_session.c.sessionid),
        ):
            connection.execute(delete(table).where(column == "purged"))
    ingestor.ingest_many(events[-1:])
    with engine.connect() as connection:
        journal = connection.execute(
            select(call_event.c.id).where(call_event.c.sessionid == "purged")
        ).all()
    assert len(journal) == 1
    with engine.connect() as connection:
        status = connection.execute(select(cdr.c.status).where(cdr.c.diallogid == "purged"))
        assert status.scalar_one_or_none() is None  # a lone hangup makes no CDR


def test_an_unstamped_call_is_read_back(engine: Engine) -> None:
    """A call written without a stamp (a bulk load, a row older than versions) holds
    events no writer's memory has."""
    ingestor = Ingestor(engine, clock=lambda: NOW)
    events = [accepted(f) for f in outbound("loaded")]
    Ingestor(engine, clock=lambda: NOW).ingest_many(events[:-1])
    with engine.begin() as connection:
        connection.execute(
            call_session.update().where(call_session.c.sessionid == "loaded").values(version=1)
        )
    ingestor.cache.keep({(TEAM, "loaded"): EMPTY})
    ingestor.ingest_many(events[-1:])
    assert billsec(engine, "loaded") == 88
