"""A database outage under load: the receiver spools, answers 2xx, and loses nothing.

A TCP proxy stands between the server and MariaDB/PostgreSQL; the test cuts it while
events are being sent and restores it a few seconds later. Every event must be
acknowledged, the spool must be empty afterwards, and every CDR exact.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.sim.simulate import SendSettings, send_events
from cdrlog.sim.traffic import Delivery, delivery_order, generate_calls
from cdrlog.store.tables import call_event
from conftest import Backend
from support.chaos import distinct_events, wrong_cdrs
from support.proxy import TcpProxy, proxied
from support.servers import running_server

CALLS = 200
OUTAGE_SECONDS = 3.0
LONGEST_OUTAGE_SECONDS = 20.0
DEFAULT_PORTS = {"mariadb": 3306, "postgresql": 5432}


async def _send_through_an_outage(base: str, events: list[Delivery], proxy: TcpProxy) -> int:
    """Send everything; cut the database a third of the way in. Returns 2xx count."""
    third = len(events) // 3
    first = await send_events(events[:third], SendSettings(base_url=base, concurrency=16))
    proxy.cut()
    during = asyncio.create_task(
        send_events(events[third : 2 * third], SendSettings(base_url=base, concurrency=16))
    )
    await asyncio.sleep(OUTAGE_SECONDS)
    # The outage lasts until the server has felt it: a batch that was retrying when the
    # link went may still be waiting out its last connection attempt.
    deadline = time.monotonic() + LONGEST_OUTAGE_SECONDS
    while await asyncio.to_thread(_spooled_count, base) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    proxy.restore()
    middle = await during
    last = await send_events(events[2 * third :], SendSettings(base_url=base, concurrency=16))
    return first.accepted + middle.accepted + last.accepted


def _spooled_count(base: str) -> float:
    """Events the server answered as spooled, from its own metrics."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cdrlog_events_accepted_total" and sample.labels["outcome"] == "spooled"
    )


def _drained(base: str, timeout: float) -> float:
    """Seconds until /readyz says the spool is empty and the database is up."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        state = httpx.get(f"{base}/readyz", timeout=5).json()
        if state["status"] == "ready":
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"the spool did not drain in {timeout} s: {state}")


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_an_outage_under_load_loses_nothing(
    backend: Backend, engine: Engine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    rng = random.Random(44)
    calls = generate_calls(rng, datetime(2026, 11, 26, 9, 0, tzinfo=UTC), calls=CALLS, teams=2)
    events = delivery_order(calls, rng, duplicate_ratio=0.2, shuffle_ratio=1)
    url = make_url(backend.url)
    spool = tmp_path / "spool"
    port = url.port or DEFAULT_PORTS[backend.name]
    with proxied(url.host or "127.0.0.1", port) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        extra = ["--spool-dir", str(spool)]
        with running_server(through, tmp_path / "server.log", extra) as base:
            acknowledged = asyncio.run(_send_through_an_outage(base, events, proxy))
            drain_seconds = _drained(base, timeout=60)
            spooled = _spooled_count(base)
    record_property("drain_seconds", round(drain_seconds, 2))
    print(
        f"outage: sent {len(events)}, acknowledged {acknowledged} ({spooled:.0f} spooled),"
        f" drained in {drain_seconds:.1f} s"
    )
    assert acknowledged == len(events)
    assert spooled > 0, "the outage never reached the spool"
    assert list(spool.glob("spool-*.jsonl")) == []
    with engine.connect() as connection:
        journaled = connection.execute(select(func.count()).select_from(call_event)).scalar_one()
    assert journaled == distinct_events(calls)
    assert wrong_cdrs(engine, calls) == []


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_tokens_known_before_an_outage_stay_in_force_during_it(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """Checking a push's token needs no database: the pushes of an outage are spooled,
    and tokens that were unknown or revoked before it stay refused."""
    store = TokenStore(engine, utc_now)
    valid = store.create(TokenScope.PUSH, "1").token
    revoked = store.create(TokenScope.PUSH, "1")
    store.revoke(revoked.id)
    url = make_url(backend.url)
    port = url.port or DEFAULT_PORTS[backend.name]
    body = (
        "sessionid=outage-1&source=CALLER&event=incoming&calltype=dialin"
        "&eventTime=2026-11-26 09:00:00&callerid=0871&AgentTeamId=1"
    )
    with proxied(url.host or "127.0.0.1", port) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        extra = ["--spool-dir", str(tmp_path / "spool")]
        with running_server(through, tmp_path / "server.log", extra) as base:

            def push(token: str) -> httpx.Response:
                return httpx.post(
                    f"{base}/astercc/1/events?token={token}",
                    content=body,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    timeout=10,
                )

            proxy.cut()
            # Past the tokens' cache time, so the server must try (and fail) to read them.
            time.sleep(2.5)
            answers = [push(valid), push(revoked.token), push("cdrlog_" + "0" * 64), push(valid)]
            proxy.restore()
            drain_seconds = _drained(base, timeout=30)
    assert [a.status_code for a in answers] == [200, 401, 401, 200]
    assert [answers[0].json()["status"], answers[3].json()["status"]] == ["spooled", "spooled"]
    assert drain_seconds < 30
    with engine.connect() as connection:
        journaled = connection.execute(select(func.count()).select_from(call_event)).scalar_one()
    assert journaled == 1
