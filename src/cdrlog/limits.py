"""Rate limits (token buckets per client address and per token), and the security
headers every answer carries. Per process: behind several receivers, each enforces
its own share."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from logging import Filter, LogRecord

from fastapi import Request, Response
from fastapi.responses import JSONResponse

LIMITED_PREFIXES = ("/astercc/", "/api/")
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
TOKEN_IN_QUERY = re.compile(r"(?i)([?&](?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)=)[^&\s]*")
MAX_KEYS = 100_000


class Buckets:
    """Token buckets: `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._levels: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if allowed; else the seconds to wait before the next request would be."""
        now = self.clock()
        with self._lock:
            if len(self._levels) >= MAX_KEYS and key not in self._levels:
                self._levels.clear()  # many one-off addresses must not grow memory
            level, then = self._levels.get(key, (self.burst, now))
            level = min(self.burst, level + (now - then) * self.rate)
            if level >= 1:
                self._levels[key] = (level - 1, now)
                return 0.0
            self._levels[key] = (level, now)
            return (1 - level) / self.rate


def too_many(wait: float, what: str) -> JSONResponse:
    return JSONResponse(
        {"status": "rejected", "error": f"too many requests from this {what}; slow down"},
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def guard(
    by_address: Buckets,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Middleware: the per-address limit, and security headers on every answer."""

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith(LIMITED_PREFIXES):
            address = request.client.host if request.client else "unknown"
            wait = by_address.take(address)
            if wait:
                response: Response = too_many(wait, "address")
                return _secured(response)
        return _secured(await call_next(request))

    return middleware


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.headers.get("content-type", "").startswith("text/html"):
        response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    return response


class RedactTokens(Filter):
    """Access logs show `?token=REDACTED`: a push URL's token is a secret."""

    def filter(self, record: LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                TOKEN_IN_QUERY.sub(r"\1REDACTED", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True
