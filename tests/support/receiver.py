"""A webhook receiver for tests: a real HTTP server on loopback that verifies each
delivery's Standard Webhooks signature (with the `standardwebhooks` package's verifier)
and keeps what arrived, or answers 503 while told to be down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    url: str
    secret: str = ""
    down: bool = False
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    bad_signatures: int = 0
    cut_off: int = 0  # bodies shorter than announced: the sender died mid-request
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Cleared: every request waits until it is set again (a receiver that hangs).
    open: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0  # seconds each answer takes (deliveries stay in flight that long)
    waiting: int = 0  # requests held while it hangs

    def __post_init__(self) -> None:
        self.open.set()

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.message for r in self.received]


@contextmanager
def receiving(secret: str = "") -> Iterator[Receiver]:
    """A receiver on a free loopback port; `secret` may be set once known."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = holder[0]
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:
                with receiver.lock:
                    receiver.cut_off += 1
                return
            with receiver.lock:
                receiver.waiting += 1
            receiver.open.wait()
            with receiver.lock:
                receiver.waiting -= 1
            time.sleep(receiver.delay)
            if receiver.down:
                with receiver.lock:
                    receiver.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(receiver.secret).verify(body, headers)
            except Exception:
                with receiver.lock:
                    receiver.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            with receiver.lock:
                receiver.received.append(Received(headers, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", secret))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
