"""Rate limits (token buckets per client address and per token), and the security
headers every answer carries. Per process: behind several receivers, each enforces
its own share."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# The API reference (Swagger UI) sets inline styles; scripts stay same-origin only.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)
# `token`, however its letters are percent-encoded (the server decodes the name).
# A token's prefix and the start of its random part: enough to know one when seen.
MAX_KEYS = 100_000
PRIVATE_PREFIXES = ("/api/", "/astercc/", "/metrics")

RawHeaders = list[tuple[bytes, bytes]]
_SECURITY = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
_CSP = (b"content-security-policy", DEFAULT_CSP.encode())
_CLOSE = (b"connection", b"close")
_NO_STORE = (b"cache-control", b"no-store")


class Buckets:
    """Token buckets: `rate` requests per second on average, bursts up to `burst`.

    At most MAX_KEYS buckets are held: a new key beyond that forgets them all (and so
    grants each a fresh burst) rather than letting one-off addresses grow memory."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._levels: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def held(self) -> int:
        """How many keys have a bucket in memory: never more than MAX_KEYS."""
        return len(self._levels)

    def take(self, key: str) -> float:
        """0 if allowed; else the seconds to wait before the next request would be."""
        now = self.clock()
        levels = self._levels
        with self._lock:
            held = levels.get(key)
            if held is None:
                if len(levels) >= MAX_KEYS:
                    levels.clear()  # many one-off addresses must not grow memory
                level = self.burst
            else:
                level = held[0] + (now - held[1]) * self.rate
                if level > self.burst:
                    level = self.burst
            if level >= 1:
                levels[key] = (level - 1, now)
                return 0.0
            levels[key] = (level, now)
            return (1 - level) / self.rate


def too_many(wait: float, what: str) -> JSONResponse:
    return JSONResponse(
        {"status": "rejected", "error": f"too many requests from this {what}; slow down"},
        status_code=429,
        headers={"Retry-After": retry_after(wait)},
    )


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def secured(headers: RawHeaders, status: int, private: bool) -> RawHeaders:
    """An answer's raw headers with what the guard adds to every answer; `private`:
    calls and tokens, which must not linger in a browser's or a proxy's cache."""
    names = set()
    html = False
    for name, value in headers:
        if name == b"content-type" and name not in names:
            html = value.startswith(b"text/html")
        names.add(name)
    for header in _SECURITY:
        if header[0] not in names:
            headers.append(header)
    if html and _CSP[0] not in names:
        headers.append(_CSP)
    if status == 413:
        # The rest of a body too large is not worth reading: hang up.
        headers = _closing(headers)
    if private and _NO_STORE[0] not in names:
        headers.append(_NO_STORE)
    return headers


def _closing(headers: RawHeaders) -> RawHeaders:
    """`Connection: close` where the answer had its first `Connection`, or last."""
    closing: RawHeaders = []
    for header in headers:
        if header[0] != b"connection":
            closing.append(header)
        elif _CLOSE not in closing:
            closing.append(_CLOSE)
    if _CLOSE not in closing:
        closing.append(_CLOSE)
    return closing


class Guard:
    """ASGI middleware: the per-address limit, and security headers on every answer.

    Plain ASGI rather than an `http` middleware function: that kind runs each request
    through a task and a memory stream, which cost a quarter of the time of a push and
    a trip per chunk of a streamed export."""

    def __init__(self, app: ASGIApp, by_address: Buckets) -> None:
        self.app = app
        self.by_address = by_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def securing(message: Message) -> None:
            if message["type"] == "http.response.start":
                private = scope["path"].startswith(PRIVATE_PREFIXES)
                headers = list(message.get("headers", ()))
                message["headers"] = secured(headers, message["status"], private)
            await send(message)

        # Every path but the liveness probe (a constant answer that must stay up while
        # someone floods): the pages and the reference cost as much as a push.
        client = scope.get("client")
        wait = 0.0
        if scope["path"] != "/healthz":
            wait = self.by_address.take(client[0] if client else "unknown")
        if wait:
            await too_many(wait, "address")(scope, receive, securing)
            return
        await self.app(scope, receive, securing)
