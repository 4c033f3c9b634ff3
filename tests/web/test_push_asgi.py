"""The Push event URLs as plain ASGI: the same answers, bytes and headers as the
framework under the guard gives, the caller read from the scope as a `Request` reads
it, and the body deadline applying to the late read alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message

from cdrlog.core.accepted import Outcome
from cdrlog.service.settings import Settings
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app
from cdrlog.web.auth import caller_of, caller_of_scope
from cdrlog.web.limits import Buckets, Guard
from cdrlog.web.push import ANSWERS, NOT_ALLOWED, TOO_SLOW, Answer, BodyDeadlines, answer
from support.teams import ALPHA

PUSH_PATH = f"/astercc/{ALPHA}/events"
RINGING = {
    "sessionid": "1709629205.118",
    "calltype": "dialout",
    "source": "CALLEE",
    "event": "ringing",
    "eventTime": "2024-03-05 09:00:05",
    "activenum": "13800138000",
}


def http_scope(
    path: str = PUSH_PATH,
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    method: str = "POST",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers or [(b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("192.0.2.9", 40000),
        "server": ("testserver", 80),
    }


async def messages_of(app: ASGIApp, scope: dict[str, Any], chunks: list[Message]) -> list[Message]:
    """What `app` sends for `scope`; after `chunks` the client waits, connected."""
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def guarded(response: JSONResponse, path: str = PUSH_PATH) -> list[Message]:
    """The messages `response` sends behind the guard, as FastAPI's routes answer."""
    guard = Guard(response, Buckets(rate=1e9, burst=1e9))
    return asyncio.run(messages_of(guard, http_scope(path), []))


def sent_by(made: Answer) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(made(send))
    return sent


@pytest.mark.parametrize("outcome", list(Outcome))
def test_an_outcomes_answer_is_what_the_framework_sent(outcome: Outcome) -> None:
    assert sent_by(ANSWERS[outcome]) == guarded(JSONResponse({"status": outcome.value}))


@pytest.mark.parametrize(
    ("made", "response"),
    [
        (NOT_ALLOWED, JSONResponse({"detail": "Method Not Allowed"}, 405, {"Allow": "POST"})),
        (TOO_SLOW, JSONResponse({"error": "the body took too long to arrive"}, 408)),
        (
            answer(401, {"detail": "team 'x' needs a push token"}, {"WWW-Authenticate": "Bearer"}),
            JSONResponse(
                {"detail": "team 'x' needs a push token"}, 401, {"WWW-Authenticate": "Bearer"}
            ),
        ),
        (
            answer(413, {"error": "body too large", "limit_bytes": 10}),
            JSONResponse({"error": "body too large", "limit_bytes": 10}, 413),
        ),
        (
            answer(400, {"status": "rejected", "errors": {"ä": "\u2028"}, "dead_letter_id": 1}),
            JSONResponse(
                {"status": "rejected", "errors": {"ä": "\u2028"}, "dead_letter_id": 1}, 400
            ),
        ),
    ],
)
def test_other_answers_are_what_the_framework_sent(made: Answer, response: JSONResponse) -> None:
    assert sent_by(made) == guarded(response)


def test_the_guard_keeps_an_answers_own_headers_and_adds_the_rest() -> None:
    html = JSONResponse({}, headers={"Content-Type": "text/html", "Cache-Control": "max-age=1"})
    [start, _] = guarded(html)
    headers = dict(start["headers"])
    assert headers[b"cache-control"] == b"max-age=1"
    assert headers[b"content-security-policy"].startswith(b"default-src 'self'")
    [start, _] = guarded(JSONResponse({}, 413, {"Connection": "keep-alive"}), "/")
    assert [value for name, value in start["headers"] if name == b"connection"] == [b"close"]
    assert b"cache-control" not in dict(start["headers"])


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ([], b""),
        ([(b"authorization", b"Bearer  first "), (b"authorization", b"Bearer second")], b""),
        ([(b"authorization", b"Basic abc")], b"token=q1&token=q2"),
        ([(b"cookie", b"cdrlog_session=s1; other=1")], b"token="),
        ([(b"cookie", b"cdrlog_session=s1"), (b"cookie", b"cdrlog_session=s2")], b""),
        ([(b"host", b"a:1"), (b"host", b"b:2"), (b"origin", b"http://c")], b"token=%41b"),
    ],
)
def test_the_caller_is_read_from_the_scope_as_a_request_reads_it(
    headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    scope = http_scope(headers=headers, query=query)
    from_request = caller_of(Request(http_scope(headers=headers, query=query)))
    from_scope = caller_of_scope(scope)
    assert (from_scope.method, from_scope.client) == (from_request.method, from_request.client)
    assert (from_scope.token, from_scope.from_cookie) == (
        from_request.token,
        from_request.from_cookie,
    )
    for name in ("authorization", "host", "origin", "cookie", "x-csrf-token"):
        assert from_scope.headers.get(name) == from_request.headers.get(name)


@contextmanager
def app_without_lifespan(sqlite_url: str, **changes: Any) -> Iterator[FastAPI]:
    """The app used as plain ASGI (no writers: each event is stored in a thread)."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = Settings(database_url=sqlite_url, allow_open=True, **changes)
    try:
        yield create_app(settings, engine)
    finally:
        engine.dispose()


def status_of(sent: list[Message]) -> int:
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    status: int = start["status"]
    return status


def body_of(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def test_only_the_late_body_gets_408_and_the_others_are_stored(sqlite_url: str) -> None:
    async def pushes(app: FastAPI) -> list[int]:
        late = messages_of(app, http_scope(), [{"type": "http.request", "body": b"a=1"} | more()])
        prompt = [
            messages_of(
                app,
                http_scope(),
                [{"type": "http.request", "body": body_of(RINGING | {"sessionid": f"s{n}"})}],
            )
            for n in range(5)
        ]
        return [status_of(sent) for sent in await gathered([late, *prompt])]

    with app_without_lifespan(sqlite_url, body_timeout_seconds=0.3) as app:
        statuses = asyncio.run(asyncio.wait_for(pushes(app), timeout=10))
    assert statuses == [408, 200, 200, 200, 200, 200]


def more() -> dict[str, Any]:
    return {"more_body": True}


async def gathered(runs: list[Awaitable[list[Message]]]) -> list[list[Message]]:
    return list(await asyncio.gather(*runs))


def test_a_body_in_chunks_is_read_whole(sqlite_url: str) -> None:
    body = body_of(RINGING)
    chunks: list[Message] = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": body[10:]},
    ]
    with app_without_lifespan(sqlite_url) as app:
        sent = asyncio.run(asyncio.wait_for(messages_of(app, http_scope(), chunks), timeout=10))
    assert status_of(sent) == 200
    assert sent[-1]["body"] == b'{"status":"stored"}'


def test_a_push_cancelled_while_its_body_is_awaited_is_cancelled_not_408(
    sqlite_url: str,
) -> None:
    async def cancelled(app: FastAPI) -> bool:
        chunks: list[Message] = [{"type": "http.request", "body": b"a", "more_body": True}]
        task = asyncio.create_task(messages_of(app, http_scope(), chunks))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    with app_without_lifespan(sqlite_url, body_timeout_seconds=0.2) as app:
        assert asyncio.run(asyncio.wait_for(cancelled(app), timeout=10))


def test_a_client_gone_mid_body_is_an_error_as_before(sqlite_url: str) -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.disconnect"},
    ]
    with app_without_lifespan(sqlite_url) as app, pytest.raises(ClientDisconnect):
        asyncio.run(asyncio.wait_for(messages_of(app, http_scope(), chunks), timeout=10))


def test_deadlines_end_the_late_reads_in_order() -> None:
    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        deadlines = BodyDeadlines(loop, 0.1)
        ended: list[str] = []

        async def read(name: str, takes: float) -> None:
            task = asyncio.current_task()
            assert task is not None
            deadlines.begin(task)
            try:
                await asyncio.sleep(takes)
                ended.append(f"{name} read")
            except asyncio.CancelledError:
                assert deadlines.expired(task)
                task.uncancel()
                ended.append(f"{name} late")
            finally:
                deadlines.end(task)

        first = asyncio.create_task(read("first", 1))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, read("second", 0.01), read("third", 1))
        await asyncio.gather(read("fourth", 0.01))
        return ended

    assert asyncio.run(run()) == ["second read", "first late", "third late", "fourth read"]
