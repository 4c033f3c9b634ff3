"""The concurrency proof, end to end: real server processes, real databases.

Two `cdrlog serve` processes share one database; 32 concurrent senders post the
shuffled, 30%-duplicated events of 500 calls, alternating between the processes so
that one call's events land on both. Every CDR must equal the one its call's script
demands, and there must be exactly one per call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select

from cdrlog.sim.simulate import SendSettings, SendSummary, send_events
from cdrlog.sim.traffic import Delivery, delivery_order, generate_calls
from cdrlog.store.tables import call_event, cdr
from conftest import Backend
from support.chaos import distinct_events, wrong_agents, wrong_cdrs
from support.servers import running_server, running_servers

# About 2,400 deliveries: a manual-shaped call and its agents' events come to 9.2 events.
CALLS = 200
SENDERS = 32
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def _send_split(events: Sequence[Delivery], bases: Sequence[str]) -> list[SendSummary]:
    """Deal the events out to the servers in turn, SENDERS requests in flight in all."""
    share = SENDERS // len(bases)
    return await asyncio.gather(
        *(
            send_events(events[n :: len(bases)], SendSettings(base_url=base, concurrency=share))
            for n, base in enumerate(bases)
        )
    )


def test_two_servers_and_32_senders_give_exactly_the_expected_cdrs(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(20261126)
    calls = generate_calls(rng, START, calls=CALLS, teams=3, agents=8, time_format="mixed")
    deliveries = delivery_order(calls, rng, duplicate_ratio=0.3, shuffle_ratio=1.0)

    with running_servers(backend.url, tmp_path, count=2) as bases:
        summaries = asyncio.run(_send_split(deliveries, bases))

    assert sum(s.sent for s in summaries) == len(deliveries)
    assert [s.errors for s in summaries if not s.ok] == []
    with engine.connect() as connection:
        journaled = connection.execute(select(func.count()).select_from(call_event)).scalar_one()
    assert journaled == distinct_events(calls)
    assert wrong_cdrs(engine, calls) == []
    assert wrong_agents(engine, calls, datetime.now(UTC)) == []


SEED_CALL = [
    {"event": "ringing", "activenum": "13800138000", "eventTime": "2026-11-26 10:00:00"},
    {"event": "answer", "eventTime": "2026-11-26 10:00:07"},
    {"event": "hangup", "hangupcause": "16", "eventTime": "2026-11-26 10:01:10"},
]
SEED_FIELDS = {
    "sessionid": "1700000001.42",
    "calltype": "dialout",
    "source": "CALLEE",
    "agentno": "1001",
    "agentphone": "8001",
}


async def _forty_senders(base: str) -> list[int]:
    # Forty connections at most: within the receiver's cap of connections per address.
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        posts = [
            client.post("/astercc/team1/events", data=SEED_FIELDS | event)
            for event in reversed(SEED_CALL)
            for _ in range(40)
        ]
        return [response.status_code for response in await asyncio.gather(*posts)]


def test_the_seed_call_from_40_concurrent_senders_makes_one_cdr(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    with running_server(backend.url, tmp_path / "server.log") as base:
        statuses = asyncio.run(_forty_senders(base))
    assert set(statuses) == {200}
    with engine.connect() as connection:
        rows = connection.execute(select(cdr)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.orgidentity, row.diallogid, row.calltype, row.target) == (
        "team1",
        "1700000001.42",
        "dialout",
        "DialOut",
    )
    assert (row.src, row.dst, row.agentno) == ("8001", "13800138000", "1001")
    assert row.starttime == datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    assert row.answertime == datetime(2026, 11, 26, 10, 0, 7, tzinfo=UTC)
    assert row.endtime == datetime(2026, 11, 26, 10, 1, 10, tzinfo=UTC)
    assert (row.duration, row.billsec, row.disposition, row.status) == (70, 63, "ANSWER", "closed")
