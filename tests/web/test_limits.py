"""Limits and web hygiene: request rates per client address and per token (429 with
Retry-After, and recovery), a body that stalls (408), a batch too long (413), security
headers, no CORS, and tokens kept out of access logs (a filter, and a real server's log).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app
from cdrlog.web.deps import ServiceApp
from cdrlog.web.limits import Buckets
from cdrlog.web.redaction import RedactTokens
from support.servers import free_port, wait_until_healthy
from support.teams import ALPHA, bearer, call_events
from support.waiting import wait_until

HTTPS = "https://127.0.0.1"


@contextmanager
def app_with(sqlite_url: str, **limits: Any) -> Iterator[FastAPI]:
    """The app on a migrated SQLite with these limits; its engine is closed afterwards.
    Open to every address (no token needed), so that clients at test addresses pass."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = Settings(database_url=sqlite_url, token_cache_seconds=0, allow_open=True, **limits)
    try:
        yield create_app(settings, engine)
    finally:
        engine.dispose()


def from_address(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, base_url=HTTPS, client=(address, 40000))


def retry_after(answer: httpx.Response) -> float:
    assert answer.status_code == 429, answer.text
    seconds = int(answer.headers["retry-after"])
    assert seconds >= 1
    return seconds


def honour(seconds: float) -> None:
    """Wait as a well-behaved client does: the `Retry-After` seconds the server gave.

    Not a guess at how long something takes: the promise under test is that a request
    sent once this much time has passed is allowed. A busy machine only makes the
    wait longer, which the bucket (on the monotonic clock) can only have refilled more.
    """
    time.sleep(seconds)


# --- request rates ---------------------------------------------------------------------


@pytest.fixture
def slow_app(sqlite_url: str) -> Iterator[FastAPI]:
    """One request a second, bursts of three: a fourth request within a second is over."""
    with app_with(sqlite_url, rate_per_second=1, rate_burst=3) as app:
        yield app


def test_an_address_over_its_rate_gets_429_and_recovers(slow_app: FastAPI) -> None:
    client = from_address(slow_app, "192.0.2.1")
    assert [client.get("/api/v1/cdrs").status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/v1/cdrs")
    wait = retry_after(refused)
    assert "address" in refused.json()["error"]
    assert refused.headers["x-content-type-options"] == "nosniff"
    pushed = client.post(f"/astercc/{ALPHA}/events", json=[])
    assert pushed.status_code == 429  # pushes share the address's allowance
    # Another address, and the health check, are not held back; the pages are.
    assert from_address(slow_app, "192.0.2.2").get("/api/v1/cdrs").status_code == 200
    assert client.get("/healthz").status_code == 200
    for path in ("/", "/docs", "/openapi.json", "/static/app.js", "/metrics", "/readyz"):
        assert client.get(path).status_code == 429, path
    honour(wait)
    assert client.get("/api/v1/cdrs").status_code == 200


def test_a_token_over_its_rate_gets_429_from_any_address(slow_app: FastAPI) -> None:
    assert isinstance(slow_app, ServiceApp)
    store: TokenStore = slow_app.services.tokens
    busy = store.create(TokenScope.READ, ALPHA).token
    other = store.create(TokenScope.READ, ALPHA).token
    first, second = from_address(slow_app, "192.0.2.1"), from_address(slow_app, "192.0.2.2")
    statuses = [first.get("/api/v1/cdrs", headers=bearer(busy)).status_code for _ in "abc"]
    assert statuses == [200] * 3
    refused = second.get("/api/v1/cdrs", params={"token": busy})
    wait = retry_after(refused)
    assert "token" in refused.json()["detail"]
    # The second address still has an allowance of its own, for another token.
    assert second.get("/api/v1/cdrs", headers=bearer(other)).status_code == 200
    honour(wait)
    assert second.get("/api/v1/cdrs", headers=bearer(busy)).status_code == 200


def test_many_one_off_addresses_do_not_grow_memory_without_bound() -> None:
    buckets = Buckets(rate=10, burst=5, clock=lambda: 0.0)
    most = 0
    for n in range(120_000):
        assert buckets.take(f"2001:db8::{n:x}") == 0.0
        most = max(most, buckets.held())
    assert most == 100_000


# --- bodies: too slow, too many events ---------------------------------------------------


def test_a_body_that_stalls_gets_408(sqlite_url: str) -> None:
    with app_with(sqlite_url, body_timeout_seconds=0.3) as app:
        status = asyncio.run(asyncio.wait_for(stalled_push(app), timeout=10))
    assert status == 408


async def stalled_push(app: FastAPI) -> int:
    """An ASGI push whose body never finishes arriving: a first chunk, then nothing."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/astercc/{ALPHA}/events",
        "raw_path": f"/astercc/{ALPHA}/events".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"500")],
        "client": ("192.0.2.9", 40000),
        "server": ("testserver", 80),
    }
    chunks = [{"type": "http.request", "body": b'[{"orgidentity": "al', "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # the client sends nothing more, and stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    status: int = start["status"]
    return status


def test_a_batch_over_the_limit_gets_413_and_stores_nothing(sqlite_url: str) -> None:
    events = call_events(ALPHA, "alpha-big", "1001", datetime(2024, 3, 5, 9))
    with app_with(sqlite_url, max_batch_events=2) as app, TestClient(app) as client:
        refused = client.post(f"/astercc/{ALPHA}/events", json=events)
        assert refused.status_code == 413, refused.text
        assert "at most 2" in refused.json()["error"]
        assert client.get("/api/v1/events").json()["events"] == []
        assert client.post(f"/astercc/{ALPHA}/events", json=events[:2]).status_code == 200
        assert len(client.get("/api/v1/events").json()["events"]) == 2


# --- headers ------------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def test_json_and_html_answers_carry_the_security_headers(sqlite_url: str) -> None:
    with app_with(sqlite_url) as app, TestClient(app) as client:
        answers = {
            "json": client.get("/api/v1/cdrs"),
            "error": client.get("/api/v1/cdrs/999"),
            "push": client.post(f"/astercc/{ALPHA}/events", json=[]),
            "page": client.get("/"),
            "reference": client.get("/docs"),
        }
    for name, answer in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, (name, header)
    for name in ("page", "reference"):
        assert answers[name].headers["content-type"].startswith("text/html")
        policy = answers[name].headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0], name
        assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in answers["page"].headers["content-security-policy"]


def test_no_cross_origin_request_is_allowed(sqlite_url: str) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    with app_with(sqlite_url) as app, TestClient(app) as client:
        answers = [
            client.get("/api/v1/cdrs", headers=origin),
            client.post(f"/astercc/{ALPHA}/events", json=[], headers=origin),
            client.options(
                "/api/v1/session",
                headers=origin
                | {
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "x-csrf-token, content-type",
                },
            ),
        ]
    for answer in answers:
        assert not [name for name in answer.headers if name.lower().startswith("access-control-")]
    assert answers[2].status_code >= 400


# --- tokens never reach a log --------------------------------------------------------------


FAKE_TOKEN = "cdrlog_" + "5ec7e7a1" * 8


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:51000", "POST", path, "1.1", 200),
        None,
    )


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/astercc/t1/events?token=cdrlog_5ec7e7", "/astercc/t1/events?token=REDACTED"),
        (
            "/api/v1/cdrs?limit=5&token=cdrlog_5ec7e7&tz=UTC",
            "/api/v1/cdrs?limit=5&token=REDACTED&tz=UTC",
        ),
        ("/api/v1/cdrs?TOKEN=cdrlog_5ec7e7", "/api/v1/cdrs?TOKEN=REDACTED"),
        ("/api/v1/cdrs?token=a&token=cdrlog_5ec7e7", "/api/v1/cdrs?token=REDACTED&token=REDACTED"),
        ("/api/v1/cdrs?mytoken=x", "/api/v1/cdrs?mytoken=x"),
        pytest.param("/api/v1/cdrs?%74oken=cdrlog_5ec7e7", "/api/v1/cdrs?%74oken=REDACTED"),
        ("/astercc/1/events?token%3D" + FAKE_TOKEN, "/astercc/1/events?token%3Dcdrlog_REDACTED"),
        (
            "/astercc/1/events?tok%2565n=" + FAKE_TOKEN,
            "/astercc/1/events?tok%2565n=cdrlog_REDACTED",
        ),
        ("/astercc/1/events?t=cdrlog%5F" + FAKE_TOKEN[7:], "/astercc/1/events?REDACTED"),
        ("/astercc/1/events?t=%63drlog_%61" + FAKE_TOKEN[8:], "/astercc/1/events?REDACTED"),
        ("/astercc/1/events?t=%2563drlog_" + FAKE_TOKEN[7:], "/astercc/1/events?REDACTED"),
        ("/astercc/cdrlog%5F" + FAKE_TOKEN[7:] + "/events", "[a line holding a token, withheld]"),
    ],
)
def test_the_access_log_filter_redacts_query_tokens(path: str, shown: str) -> None:
    record = access_record(path)
    assert RedactTokens().filter(record) is True
    assert record.getMessage() == f'127.0.0.1:51000 - "POST {shown} HTTP/1.1" 200'


def test_any_log_line_loses_a_token_it_holds() -> None:
    record = logging.LogRecord("cdrlog", logging.INFO, __file__, 1, f"saw {FAKE_TOKEN}!", (), None)
    assert RedactTokens().filter(record) is True
    assert record.getMessage() == "saw cdrlog_REDACTED!"


@dataclass(frozen=True)
class Server:
    base: str
    log: Path
    push_token: str


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    """`cdrlog serve` with a push token, and a one-second body timeout from its
    environment (no flag sets it; `servers.running_server` drops CDRLOG_* variables)."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    token = TokenStore(engine, utc_now).create(TokenScope.PUSH, ALPHA).token
    engine.dispose()
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", sqlite_url, "--port", str(port)]
    # The access log is what must not show a token.
    command += ["--spool-dir", str(tmp_path / "spool"), "--access-log"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    environment["CDRLOG_BODY_TIMEOUT_SECONDS"] = "1"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, log.read_text)
        yield Server(base, log, token)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.slow
def test_a_real_server_times_out_a_stalled_body_and_logs_no_token(server: Server) -> None:
    event = call_events(ALPHA, "alpha-log", "1001", datetime(2024, 3, 5, 9))[0]
    url = f"{server.base}/astercc/{ALPHA}/events"
    assert httpx.post(url, params={"token": server.push_token}, json=event).status_code == 200
    assert httpx.post(url, headers=bearer(server.push_token), json=event).status_code == 200
    assert (
        httpx.get(f"{server.base}/api/v1/cdrs", params={"token": "cdrlog_guess"}).status_code == 401
    )
    port = int(server.base.rsplit(":", 1)[1])
    # The socket gives up after 15 s, well short of the 30 s default: a 408 read at all
    # is the environment's one-second body timeout at work.
    answer = stalled_socket_push(port, f"/astercc/{ALPHA}/events?token={server.push_token}")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    stalled = f'"POST /astercc/{ALPHA}/events?token=REDACTED HTTP/1.1" 408'

    def logged_stall() -> str:
        """The log once it holds the 408's line (written after the answer), else ''."""
        text = server.log.read_text()
        return text if stalled in text else ""

    text = wait_until(logged_stall, what="the 408's access log line")
    assert server.push_token not in text
    assert "cdrlog_guess" not in text
    assert text.count("token=REDACTED") >= 3, text


def stalled_socket_push(port: int, target: str) -> bytes:
    """Send the headers and the first bytes of a body, then nothing: read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as connection:
        head = (
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 400\r\n\r\n"
        )
        connection.sendall(head.encode() + b'[{"orgidentity": "al')
        return connection.recv(4096)
