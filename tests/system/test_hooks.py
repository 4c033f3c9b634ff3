"""CDRs onward, end to end: a real `cdrlog serve` on each database receives a simulated
run in the manual's shape (shuffled, duplicated), and real receivers get every closed
CDR exactly as the API shows it, signed, each version of a CDR in order."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from cdrlog.core.hooks import Kind
from cdrlog.service.clock import utc_now
from cdrlog.service.hookadmin import subscribe
from cdrlog.sim.simulate import SendSettings, run_simulation
from cdrlog.sim.traffic import delivery_order, generate_calls
from conftest import Backend
from support.broker import Broker
from support.receiver import Receiver, receiving
from support.servers import running_server

CALLS = 60
# What a CDR's detail holds besides the CDR: its call's events as they are when read,
# which an event that changes nothing in the CDR (a late leg's hangup) still extends.
TIMELINE = ("events", "events_truncated")


def test_receivers_get_every_closed_cdr_as_the_api_shows_it(
    backend: Backend, engine: Engine, amqp_url: str, tmp_path: Path
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    rng = random.Random(16)
    calls = generate_calls(rng, start, calls=CALLS, teams=2, agents=4, mean_gap_seconds=5)
    deliveries = delivery_order(calls, rng, duplicate_ratio=0.2, shuffle_ratio=1.0)

    with receiving() as closed, receiving() as every:
        closed.secret = _hook(engine, closed, ())
        every.secret = _hook(engine, every, (Kind.CDR_CREATED, Kind.CDR_UPDATED, Kind.CDR_CLOSED))
        broker = Broker(amqp_url, f"cdrlog-test-{uuid.uuid4().hex[:8]}")
        broker.bind("cdr.closed.*")
        broker.secret = subscribe(
            engine,
            utc_now,
            broker.target,
            team=None,
            kinds=(Kind.CDR_CLOSED,),
            secret=None,
            note=None,
            allow_private=True,
        ).secret
        extra = ["--allow-private-targets"]
        with running_server(backend.url, tmp_path / "serve.log", extra) as base:
            sent = run_simulation(deliveries, SendSettings(base_url=base, concurrency=16))
            assert sent.ok, sent.errors
            with httpx.Client(base_url=base, timeout=30) as client:
                shown = _details(client)
                assert len(shown) == CALLS
                final = {cdr_id: cdr["version"] for cdr_id, cdr in shown.items()}
                _wait_for(lambda: _newest(closed) == final and _newest(every) == final)
                try:
                    _wait_for(lambda: _versions(_newest_of(broker.take())) == final)
                finally:
                    broker.remove()
                queued = broker.taken
                figures = client.get("/metrics").text
    delivered = re.findall(
        r'^cdrlog_hook_deliveries_total\{hook="\d+",outcome="delivered"\} (\S+)$', figures, re.M
    )
    assert len(delivered) == 3
    assert sum(map(float, delivered)) >= 3 * len(final)
    assert re.search(r'^cdrlog_hook_backlog\{hook="\d+"\} ', figures, re.M)

    by_broker = _newest_of(queued)
    assert {cdr_id: m["version"] for cdr_id, m in by_broker.items()} == final
    for cdr_id, message in by_broker.items():
        assert _record(message["data"]) == _record(shown[cdr_id])

    assert closed.bad_signatures == every.bad_signatures == 0
    for message in closed.messages():
        assert message["type"] == "cdr.closed"
    newest = _newest_messages(closed)
    for cdr_id, cdr in shown.items():
        assert cdr["status"] != "open"
        message = newest[cdr_id]
        assert message["version"] == cdr["version"]
        assert _record(message["data"]) == _record(cdr)
    _check_order(every)


def _hook(engine: Engine, receiver: Receiver, kinds: tuple[Kind, ...]) -> str:
    made = subscribe(
        engine,
        utc_now,
        receiver.url,
        team=None,
        kinds=kinds or (Kind.CDR_CLOSED,),
        secret=None,
        note=None,
        allow_private=True,
    )
    return made.secret


def _details(client: httpx.Client) -> dict[int, dict[str, Any]]:
    listed = client.get("/api/v1/cdrs", params={"limit": 1000}).json()["cdrs"]
    return {row["id"]: client.get(f"/api/v1/cdrs/{row['id']}").json() for row in listed}


def _record(detail: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in detail.items() if name not in TIMELINE}


def _newest_messages(receiver: Receiver) -> dict[int, dict[str, Any]]:
    return _newest_of(receiver.messages())


def _newest_of(messages: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    newest: dict[int, dict[str, Any]] = {}
    for message in messages:
        cdr_id = message["data"]["id"]
        if cdr_id not in newest or message["version"] > newest[cdr_id]["version"]:
            newest[cdr_id] = message
    return newest


def _versions(newest: dict[int, dict[str, Any]]) -> dict[int, int]:
    return {cdr_id: message["version"] for cdr_id, message in newest.items()}


def _newest(receiver: Receiver) -> dict[int, int]:
    return {cdr_id: m["version"] for cdr_id, m in _newest_messages(receiver).items()}


def _check_order(receiver: Receiver) -> None:
    """Per CDR, versions arrive in increasing order (a repeat, same webhook-id, aside),
    each named by its state's kind."""
    seen: dict[int, list[int]] = defaultdict(list)
    with receiver.lock:
        received = list(receiver.received)
    for item in received:
        message = item.message
        cdr = message["data"]
        versions = seen[cdr["id"]]
        assert item.headers["webhook-id"].endswith(f"_{message['version']}")
        if versions and message["version"] == versions[-1]:
            continue  # at least once: a repeat of what was in flight
        assert not versions or message["version"] > versions[-1], (cdr["id"], versions)
        versions.append(message["version"])
        if cdr["status"] != "open":
            assert message["type"] == "cdr.closed"
        else:
            assert message["type"] == ("cdr.created" if message["version"] == 1 else "cdr.updated")
    assert seen


def _wait_for(done: Callable[[], bool], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "deliveries did not arrive in time"
        time.sleep(0.2)
