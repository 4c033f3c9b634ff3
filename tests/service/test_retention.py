"""Retention while serving (`--retain-days`): a serving process purges what is older than
the limit at start and every hour after, keeps what is newer, and stops with it."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from cdrlog.core.accepted import Accepted
from cdrlog.service.clock import utc_now
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import Intake
from cdrlog.service.retention import Retention
from cdrlog.service.services import build_services
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store.purge import purge
from cdrlog.store.tables import call_event, cdr
from conftest import Backend

DAYS = 30
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=DAYS + 10)
NEW = NOW - timedelta(hours=2)


def ingest(engine: Engine, calls: Sequence[GeneratedCall], received: datetime) -> None:
    """The calls' events and their agents' events, as received at `received`."""
    intake = Intake(Settings(), Ingestor(engine, clock=lambda: received))
    for call in calls:
        events = [*call.events, *call.agent_events]
        checked = [intake.check(call.team, event) for event in events]
        accepted = [one for one in checked if isinstance(one, Accepted)]
        assert len(accepted) == len(checked)
        intake.ingestor.ingest_many(accepted)


def calls_at(seed: int, start: datetime) -> list[GeneratedCall]:
    return generate_calls(random.Random(seed), start, calls=12, teams=2)


def counted(engine: Engine) -> dict[str, int]:
    """CDRs and journal rows, older and newer than the limit."""
    cut = NOW - timedelta(days=DAYS)
    rows = select(func.count())
    queries = {
        "old cdrs": rows.select_from(cdr).where(cdr.c.starttime < cut),
        "new cdrs": rows.select_from(cdr).where(cdr.c.starttime >= cut),
        "old events": rows.select_from(call_event).where(call_event.c.received_at < cut),
        "new events": rows.select_from(call_event).where(call_event.c.received_at >= cut),
    }
    with engine.connect() as connection:
        return {name: int(connection.execute(q).scalar_one()) for name, q in queries.items()}


@pytest.fixture
def aged(engine: Engine) -> dict[str, int]:
    """Calls of 40 days ago and of two hours ago; what the database then holds."""
    ingest(engine, calls_at(1, OLD), OLD)
    ingest(engine, calls_at(2, NEW), NEW)
    before = counted(engine)
    assert min(before.values()) > 0, before
    return before


def wait_for_a_run(retention: Retention, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while retention.runs == 0:
        assert time.monotonic() < deadline, "retention did not run"
        time.sleep(0.02)


def test_old_calls_go_and_new_ones_stay(engine: Engine, aged: dict[str, int]) -> None:
    retention = Retention(engine, utc_now, DAYS)
    try:
        wait_for_a_run(retention)
    finally:
        retention.close()
    after = counted(engine)
    assert after == {**aged, "old cdrs": 0, "old events": 0}


def test_serving_with_retain_days_purges(
    backend: Backend, engine: Engine, aged: dict[str, int]
) -> None:
    services = build_services(Settings(database_url=backend.url, retain_days=DAYS), engine)
    services.start_writers()
    retention = services.retention
    assert retention is not None
    try:
        wait_for_a_run(retention)
    finally:
        services.close()
    assert not retention.running
    assert counted(engine) == {**aged, "old cdrs": 0, "old events": 0}


def test_serving_without_retain_days_keeps_everything(
    backend: Backend, engine: Engine, aged: dict[str, int]
) -> None:
    services = build_services(Settings(database_url=backend.url), engine)
    services.start_writers()
    services.close()
    assert services.retention is None
    assert counted(engine) == aged


def test_a_stopped_purge_deletes_nothing_more(engine: Engine, aged: dict[str, int]) -> None:
    counts = purge(engine, NOW - timedelta(days=DAYS), keep_going=lambda: False)
    assert (counts.cdr, counts.call_event, counts.batches) == (0, 0, 0)
    assert counted(engine) == aged
