"""An in-memory SQLite database (`sqlite://`): one database for the engine's whole life,
shared by every thread that uses the engine, and no file anywhere."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cdrlog.store.database import in_memory, in_transaction, make_engine, read_only, upgrade
from cdrlog.store.tables import call_session

WRITERS = 8
SESSIONS = 200


def test_every_caller_of_an_in_memory_engine_sees_one_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a file would appear, were one made
    engine = make_engine("sqlite://")
    try:
        upgrade(engine)

        def write_then_count(n: int) -> int:
            row = {"orgidentity": "t1", "sessionid": f"s{n}", "created_at": datetime.now(UTC)}
            in_transaction(engine, lambda c: c.execute(call_session.insert(), row))
            with engine.connect() as connection:
                counted = select(func.count()).select_from(call_session)
                seen: int = read_only(connection).execute(counted).scalar_one()
                return seen

        # Writers and readers on several threads at once: each must find the schema the
        # migration made and at least its own row, and none may fail on another's
        # transaction.
        with ThreadPoolExecutor(WRITERS) as pool:
            seen = list(pool.map(write_then_count, range(SESSIONS)))
        assert all(count >= 1 for count in seen)
        with engine.connect() as connection:
            rows = connection.execute(select(call_session.c.sessionid)).scalars().all()
        assert sorted(rows) == sorted(f"s{n}" for n in range(SESSIONS))
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite://", True),
        ("sqlite:///:memory:", True),
        ("sqlite:///file::memory:?uri=true", True),
        ("sqlite:///file:calls?mode=memory&cache=shared&uri=true", True),
        ("sqlite:///cdrlog.db", False),
        ("sqlite:////var/lib/cdrlog/cdrlog.db", False),
        ("sqlite:///file:cdrlog.db?uri=true", False),
        ("postgresql+psycopg://cdrlog@db.example/cdrlog", False),
    ],
)
def test_in_memory_urls_are_told_from_files(url: str, memory: bool) -> None:
    assert in_memory(url) is memory
