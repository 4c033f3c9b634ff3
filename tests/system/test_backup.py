"""`cdrlog backup` while the service receives, and the restore procedure of
docs/operations.md.

A real `cdrlog serve` on a SQLite file holding a history of calls receives the events of
more calls, steadily, from sender threads, while backups are taken. Each backup must be
one committed state of the database: intact, on the current schema, and every CDR in it
the fold of exactly the events its own journal holds (what `cdrlog rebuild --dry-run`
on it finds nothing to change), though events kept arriving while it was taken. Then
one backup is restored (the service stopped, the file copied over the database, its
-wal and -shm removed) and the service serves from it, taking events again.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import func, select

from cdrlog.cli.backup import backup
from cdrlog.service.clock import utc_now
from cdrlog.service.ingest import Ingestor
from cdrlog.service.rebuild import Selection, rebuild
from cdrlog.sim.bulk import load
from cdrlog.sim.simulate import FORM_TYPE, event_url, form_body
from cdrlog.sim.simulate_check import check_receiver
from cdrlog.sim.traffic import Delivery, GeneratedCall, delivery_order, generate_calls
from cdrlog.store.database import alembic_config, make_engine, upgrade
from cdrlog.store.tables import call_event, cdr
from support.servers import running_server
from system.conftest import Figures

pytestmark = pytest.mark.slow

# The history already there (`CDRLOG_BACKUP_HISTORY` for a bigger one), and the calls
# whose events arrive while the backups are taken.
HISTORY = int(os.environ.get("CDRLOG_BACKUP_HISTORY", "3000"))
LIVE_CALLS = 120
SENDERS = 4
# Events per second, all senders together: steady enough that every backup overlaps
# arriving events, slow enough that several backups fit in the stream.
RATE = 300.0
BACKUPS = 3


@dataclass
class Stream:
    """Events sent from sender threads at a steady rate; what was acknowledged when."""

    base: str
    deliveries: Sequence[Delivery]
    acknowledged: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> Delivery | None:
        with self._lock:
            if self._next == len(self.deliveries):
                return None
            self._next += 1
            return self.deliveries[self._next - 1]

    def send(self, began: float) -> None:
        with httpx.Client(timeout=10.0) as client:
            while (item := self.take()) is not None:
                # Paced as a whole: event n leaves at n / RATE seconds after the start.
                with self._lock:
                    due = began + self._next / RATE
                time.sleep(max(0.0, due - time.monotonic()))
                answer = client.post(
                    event_url(self.base, item.event, item.team),
                    content=form_body(item.event),
                    headers={"content-type": FORM_TYPE},
                )
                with self._lock:
                    if answer.status_code == 200:
                        self.acknowledged.append(time.monotonic())
                    else:
                        self.failures.append(f"{answer.status_code} {answer.text[:200]}")

    def sent_share(self) -> float:
        with self._lock:
            return self._next / len(self.deliveries)

    def acknowledged_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(start <= moment <= end for moment in self.acknowledged)


@contextmanager
def streaming(stream: Stream) -> Iterator[Stream]:
    began = time.monotonic()
    threads = [threading.Thread(target=stream.send, args=(began,)) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        yield stream
    finally:
        for thread in threads:
            thread.join()


@dataclass(frozen=True)
class Taken:
    path: Path
    seconds: float
    acknowledged_meanwhile: int
    cdrs: int
    events: int


def live_traffic() -> tuple[list[GeneratedCall], list[Delivery]]:
    rng = random.Random(7)
    calls = generate_calls(rng, datetime.now(UTC) - timedelta(minutes=30), calls=LIVE_CALLS)
    return calls, delivery_order(calls, rng, duplicate_ratio=0.05, shuffle_ratio=0.3)


def take_backup(target: Path, url: str, stream: Stream) -> Taken:
    began = time.monotonic()
    result = CliRunner().invoke(backup, ["--to", str(target), "--db", url])
    ended = time.monotonic()
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o077 == 0, "a backup holds token hashes: owner only"
    with closing(sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)) as copy:
        cdrs = copy.execute("SELECT count(*) FROM cdr").fetchone()[0]
        events = copy.execute("SELECT count(*) FROM call_event").fetchone()[0]
    return Taken(target, ended - began, stream.acknowledged_between(began, ended), cdrs, events)


def assert_consistent(taken: Taken, scratch: Path) -> None:
    """Intact, current, one file, and every CDR the fold of the journal beside it."""
    assert not Path(f"{taken.path}-wal").exists(), "a backup is one file"
    with closing(sqlite3.connect(f"{taken.path.as_uri()}?mode=ro", uri=True)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # Checked on a copy: an engine puts the file it opens into WAL mode.
    checked = scratch / f"check-{taken.path.name}"
    shutil.copyfile(taken.path, checked)
    engine = make_engine(f"sqlite:///{checked}")
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
            orphans = connection.execute(
                select(func.count())
                .select_from(cdr)
                .where(
                    ~select(call_event.c.id)
                    .where(
                        call_event.c.orgidentity == cdr.c.orgidentity,
                        call_event.c.sessionid == cdr.c.diallogid,
                    )
                    .exists()
                )
            ).scalar_one()
        assert current == head
        assert orphans == 0, "CDRs whose events the backup lacks"
        ingestor = Ingestor(engine, utc_now, timedelta(minutes=240))
        refolded = rebuild(ingestor, ZoneInfo("UTC"), Selection(), dry_run=True)
    finally:
        engine.dispose()
    assert refolded.calls >= taken.cdrs
    assert (refolded.cdrs_created, refolded.cdrs_changed, refolded.events_reparsed) == (0, 0, 0), (
        refolded.changes
    )


def test_a_backup_under_load_is_a_consistent_snapshot_and_restores(
    tmp_path: Path, figures: Figures
) -> None:
    database = tmp_path / "cdrlog.db"
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine)
    history = load(engine, HISTORY, seed=1, days=30, teams=3, agents=10, progress=False)
    engine.dispose()
    calls, deliveries = live_traffic()
    taken: list[Taken] = []
    with running_server(url, tmp_path / "server.log") as base:
        with streaming(Stream(base, deliveries)) as stream:
            for number in range(1, BACKUPS + 1):
                while stream.sent_share() < number / (BACKUPS + 1):
                    time.sleep(0.01)
                taken.append(take_backup(tmp_path / f"backup-{number}.db", url, stream))
        assert not stream.failures, stream.failures[:5]
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as served:
            final_events = served.execute("SELECT count(*) FROM call_event").fetchone()[0]
    for number, one in enumerate(taken, 1):
        figures(f"backup_{number}_cdrs", one.cdrs)
        figures(f"backup_{number}_seconds", one.seconds)
        figures(f"backup_{number}_acknowledged_meanwhile", one.acknowledged_meanwhile)
        figures(f"backup_{number}_mib", one.path.stat().st_size / 2**20)
    figures("load_events_per_second", RATE)
    figures("history_cdrs", history.cdrs)
    # Each backup is a moment of the stream: after the history, before the end.
    counts = [one.events for one in taken]
    assert history.events < counts[0]
    assert counts == sorted(counts)
    assert counts[-1] < final_events
    assert sum(one.acknowledged_meanwhile for one in taken) > 0, "no backup overlapped the load"
    for one in taken:
        assert_consistent(one, tmp_path)
    restored = taken[1]
    # The restore procedure: the service stopped (above), the backup copied over the
    # database, the database's -wal and -shm (of the state replaced) removed.
    shutil.copyfile(restored.path, database)
    for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    with (
        running_server(url, tmp_path / "restored.log") as base,
        httpx.Client(base_url=base, timeout=10.0) as client,
    ):
        page = client.get("/api/v1/cdrs", params={"limit": 1}).json()
        assert page["total"] == restored.cdrs
        # What came after the backup is lost with the restore: asterCC does not send it
        # again, but sending it again (duplicates and all) must work as ever.
        with streaming(Stream(base, deliveries)) as again:
            pass
        assert not again.failures, again.failures[:5]
        teams = tuple(sorted({call.team for call in calls}))
        report = check_receiver(client, calls, None, unchecked_teams=teams)
    assert report.cdrs_wrong == 0, report.problems
