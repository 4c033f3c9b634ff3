"""Hooks under faults, with real processes: `cdrlog serve` SIGKILLed in the middle of
its deliveries, RabbitMQ restarted in the middle of a run, and two servers behind nginx
sharing one outbox. Nothing is lost; a repeat is only of what was in flight."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from cdrlog.core.hooks import Kind
from cdrlog.service.clock import utc_now
from cdrlog.service.dispatcher import IN_FLIGHT
from cdrlog.service.hookadmin import subscribe
from cdrlog.sim.simulate import SendSettings, run_simulation, send_events
from cdrlog.sim.traffic import GeneratedCall, delivery_order, generate_calls
from cdrlog.store.tables import cdr
from conftest import Backend, skip_unless_optional
from support.broker import Broker
from support.chaos import Server
from support.nginx import EXAMPLE, nginx_binary, proxy_settings, running_nginx
from support.receiver import Receiver, receiving
from support.servers import free_port, running_server

pytestmark = pytest.mark.slow

# Short sends, so that a lease left by a killed server ends soon (see `Dispatcher`).
HOOK_OPTIONS = ("--allow-private-targets", "--hook-timeout-seconds", "2")


def the_calls(seed: int, count: int) -> list[GeneratedCall]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return generate_calls(random.Random(seed), start, calls=count, teams=2, agents=4)


def closed_versions(engine: Engine) -> dict[int, int]:
    """Each CDR's version, every call having ended."""
    with engine.connect() as connection:
        rows = connection.execute(select(cdr.c.id, cdr.c.version, cdr.c.status)).all()
    assert all(status != "open" for _, _, status in rows)
    return {cdr_id: version for cdr_id, version, _ in rows}


def newest(messages: list[dict[str, Any]]) -> dict[int, int]:
    found: dict[int, int] = {}
    for message in messages:
        cdr_id = message["data"]["id"]
        found[cdr_id] = max(found.get(cdr_id, 0), message["version"])
    return found


def repeats(receiver: Receiver) -> int:
    with receiver.lock:
        ids = Counter(item.headers["webhook-id"] for item in receiver.received)
    return sum(count - 1 for count in ids.values())


def wait_for(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what}: not in {seconds:.0f} s"
        time.sleep(0.2)


def closed_hook(engine: Engine, target: str) -> str:
    made = subscribe(
        engine,
        utc_now,
        target,
        team=None,
        kinds=(Kind.CDR_CLOSED,),
        secret=None,
        note=None,
        allow_private=True,
    )
    return made.secret


# SQLite and one server database: what differs between the servers (row claims) is
# tested on both by the nginx test and tests/store/test_outbox.py.
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_sigkill_mid_delivery_loses_nothing(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    calls = the_calls(20261205, 60)
    deliveries = delivery_order(calls, random.Random(1), duplicate_ratio=0.1, shuffle_ratio=1.0)
    server = Server(backend.url, tmp_path / "server.log", extra=HOOK_OPTIONS)
    with receiving() as receiver:
        receiver.secret = closed_hook(engine, receiver.url)
        receiver.delay = 0.3  # deliveries stay in flight long enough to be cut off
        server.start()
        try:
            sent = run_simulation(deliveries, SendSettings(base_url=server.base, concurrency=16))
            assert sent.ok, sent.errors
            final = closed_versions(engine)
            wait_for(lambda: len(receiver.messages()) >= 10, 60, "the first deliveries")
            server.kill()
            before = newest(receiver.messages())
            assert before != final  # killed in the middle of the deliveries
            server.start()
            wait_for(lambda: newest(receiver.messages()) == final, 120, "every closed CDR")
        finally:
            server.stop()
    duplicates = repeats(receiver)
    print(f"sigkill: {len(final)} CDRs, {len(before)} had arrived before the kill, "
          f"{len(receiver.messages())} in all, {duplicates} repeats")  # fmt: skip
    assert duplicates <= IN_FLIGHT  # only what was in flight when the server died
    assert receiver.bad_signatures == 0


def rabbitmq(action: str) -> None:
    """Stop or start the broker (its application: every connection is dropped and the
    port closes; durable queues and persistent messages are kept, as over a restart)."""
    command = ["rabbitmqctl", f"{action}_app"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        skip_unless_optional(f"`{' '.join(command)}` failed: {error}")
    if done.returncode != 0:
        skip_unless_optional(f"`{' '.join(command)}` failed: {done.stderr.strip()}")


# The broker's restart is the fault here, not the database: one run.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_rabbitmq_restarted_mid_run_loses_nothing(
    engine: Engine, amqp_url: str, tmp_path: Path, backend: Backend
) -> None:
    first, second = the_calls(31, 40), the_calls(32, 40)
    broker = Broker(amqp_url, f"cdrlog-restart-{uuid.uuid4().hex[:8]}")
    broker.bind("cdr.closed.*")
    broker.secret = closed_hook(engine, broker.target)
    with running_server(backend.url, tmp_path / "serve.log", HOOK_OPTIONS) as base:
        settings = SendSettings(base_url=base, concurrency=16)
        rng = random.Random(3)
        assert run_simulation(
            delivery_order(first, rng, duplicate_ratio=0.1, shuffle_ratio=1.0), settings
        ).ok
        wait_for(lambda: broker.count() >= 20, 60, "the first messages")
        rabbitmq("stop")
        try:
            assert run_simulation(
                delivery_order(second, rng, duplicate_ratio=0.1, shuffle_ratio=1.0), settings
            ).ok
            time.sleep(2)  # deliveries fail meanwhile, and wait for their next try
        finally:
            rabbitmq("start")
        final = closed_versions(engine)
        try:
            wait_for(lambda: newest(broker.take()) == final, 180, "every closed CDR's last version")
        finally:
            broker.remove()
    print(f"rabbitmq restart: {len(final)} CDRs, {len(broker.taken)} messages")


def hook_deliveries(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = re.findall(
        r'^cdrlog_hook_deliveries_total\{hook="\d+",outcome="delivered"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return sum(float(value) for value in found)


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_two_servers_behind_nginx_share_one_outbox(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    binary = nginx_binary()
    calls = the_calls(20261206, 80)
    events = delivery_order(calls, random.Random(2), duplicate_ratio=0.2, shuffle_ratio=1.0)
    with receiving() as receiver, ExitStack() as stack:
        receiver.secret = closed_hook(engine, receiver.url)
        receiver.delay = 0.02
        bases = [
            stack.enter_context(
                running_server(
                    backend.url,
                    tmp_path / f"server-{n}.log",
                    ["--spool-dir", str(tmp_path / f"spool-{n}"), *HOOK_OPTIONS],
                )
            )
            for n in range(2)
        ]
        listen = free_port()
        http = proxy_settings(
            EXAMPLE.read_text(), listen, [int(b.rsplit(":", 1)[1]) for b in bases]
        )
        entry = stack.enter_context(running_nginx(binary, tmp_path, http, listen))
        sent = asyncio.run(send_events(events, SendSettings(entry, concurrency=16)))
        assert sent.ok, sent.errors
        final = closed_versions(engine)
        wait_for(lambda: newest(receiver.messages()) == final, 120, "every closed CDR")
        shares = [hook_deliveries(base) for base in bases]
    duplicates = repeats(receiver)
    print(f"two servers: {len(final)} CDRs, deliveries by server {shares}, {duplicates} repeats")
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == len(receiver.messages())
    assert duplicates == 0
