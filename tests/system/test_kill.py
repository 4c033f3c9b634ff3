"""Acknowledged means durable: SIGKILL the server mid-load, again and again.

A sender posts the shuffled, partly duplicated events of interleaved calls with 24
requests in flight to a real `cdrlog serve`, and forgets an event only once it has seen
that event's 200. At random moments the server is killed with SIGKILL; while it is down
the journal must already hold every event acknowledged so far (a copy re-sent later
would otherwise hide a lost one). The server is started again on the same port and
database, and the sender re-sends whatever was never answered, until every event is.
Then the journal holds each distinct event exactly once and every CDR equals the one
its call's script demands. `CDRLOG_KILL_EVENTS` sets the size (`make soak`: 20,000).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from conftest import Backend
from support.chaos import (
    Ledger,
    Server,
    Traffic,
    acknowledged_keys,
    env_size,
    journal_keys,
    kill_points,
    make_traffic,
    missing_from_journal,
    send_until_acknowledged,
    spooled_keys,
    wait_for_acknowledged,
    wrong_agents,
    wrong_cdrs,
)

pytestmark = pytest.mark.slow

# CI's size: 15 to 25 s per backend on a busy two-core machine; `make soak` goes further.
DEFAULT_EVENTS = 4_000
CONCURRENCY = 24


@dataclass
class KillLog:
    """Per kill: how many events were acknowledged then, and which of them the journal lacked."""

    acknowledged: list[int] = field(default_factory=list)
    spooled: list[int] = field(default_factory=list)
    lost: list[set[tuple[str, str]]] = field(default_factory=list)


async def _kill_at(
    points: list[int],
    server: Server,
    ledger: Ledger,
    traffic: Traffic,
    engine: Engine,
    kills: KillLog,
    deadline: float,
) -> None:
    rng = random.Random(len(points))  # the moments vary with the size, reproducibly
    for point in points:
        await wait_for_acknowledged(ledger, point, deadline)
        if ledger.done:
            return
        await asyncio.sleep(rng.uniform(0, 0.05))  # not always right after an answer
        await asyncio.to_thread(server.kill)
        # The process is gone: every 200 the sender has seen was sent before it died.
        acknowledged = acknowledged_keys(traffic, ledger)
        kills.acknowledged.append(len(ledger.acknowledged))
        kills.spooled.append(len(spooled_keys(server.spool)))
        lost = await asyncio.to_thread(missing_from_journal, engine, acknowledged, server.spool)
        kills.lost.append(lost)
        await asyncio.to_thread(server.start)


async def _run(
    server: Server, ledger: Ledger, traffic: Traffic, engine: Engine, kills: KillLog, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    points = kill_points(
        random.Random(7), len(ledger.requests), kills=3 + len(ledger.requests) // 10_000
    )
    # One task group: should the killer fail (a restart that never gets healthy), the
    # sender stops at once instead of retrying until the deadline.
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(_kill_at(points, server, ledger, traffic, engine, kills, deadline))
        tasks.create_task(send_until_acknowledged(ledger, server.port, CONCURRENCY, deadline))


def test_sigkill_mid_load_loses_no_acknowledged_event(
    backend: Backend, engine: Engine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    size = env_size("CDRLOG_KILL_EVENTS", DEFAULT_EVENTS, minimum=100)
    traffic = make_traffic(seed=20261126, events=size)
    server = Server(backend.url, tmp_path / "server.log")
    ledger = Ledger(traffic.requests(server.port))
    kills = KillLog()
    began = time.monotonic()
    server.start()
    try:
        asyncio.run(_run(server, ledger, traffic, engine, kills, seconds=120 + size / 20))
    finally:
        server.stop()
    elapsed = time.monotonic() - began

    journaled = journal_keys(engine)
    # An event stored but unanswered when the server died is answered `duplicate` later.
    committed_unanswered = len(traffic.fingerprints()) - ledger.outcomes["stored"]
    figures = {
        "events": len(ledger.requests),
        "distinct": len(traffic.fingerprints()),
        "calls": len(traffic.calls),
        "requests": ledger.attempts,
        "acknowledged": len(ledger.acknowledged),
        "journaled": len(journaled),
        "kills": len(kills.acknowledged),
        "restarts": server.starts - 1,
        "unanswered": ledger.unanswered,
        "seconds": round(elapsed, 1),
    }
    for name, value in figures.items():
        record_property(name, value)
    print(
        f"\nkill test [{backend.name}]: {figures['events']} events sent "
        f"({figures['distinct']} distinct, {figures['calls']} calls) in {figures['requests']} "
        f"requests; {figures['acknowledged']} acknowledged ({dict(ledger.outcomes)}); "
        f"{figures['journaled']} in the journal; {committed_unanswered} committed at a kill "
        f"but never answered (answered `duplicate` on re-send); {figures['kills']} kills at "
        f"{kills.acknowledged} acknowledged ({kills.spooled} in the spool then); "
        f"{figures['restarts']} restarts; "
        f"{figures['unanswered']} unanswered tries; answers {dict(ledger.statuses)}; "
        f"{elapsed:.1f} s"
    )

    assert ledger.refused == []
    assert len(kills.acknowledged) >= 3, "the load ended before three kills"
    assert [len(lost) for lost in kills.lost] == [0] * len(kills.lost), kills.lost
    assert len(ledger.acknowledged) == len(ledger.requests)
    assert acknowledged_keys(traffic, ledger) <= set(journaled)
    assert sorted(journaled) == sorted(traffic.fingerprints()), "journal: missing or extra"
    assert wrong_cdrs(engine, traffic.calls) == []
    assert wrong_agents(engine, traffic.calls, datetime.now(UTC)) == []
    assert spooled_keys(server.spool) == set(), "events left in the spool"
    assert set(ledger.statuses) <= {200, 503}, server.log_tail()
