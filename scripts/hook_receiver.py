"""A webhook receiver for `bench_hooks.py`: answers every POST 204 at once and counts
what arrived (deliveries, distinct webhook-ids, first and last arrival); `GET /count`
tells. A bare ASGI app, so that the receiver is never what the benchmark measures.

    .venv/bin/python -m uvicorn hook_receiver:app --app-dir scripts --port 8091
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SEEN: set[bytes] = set()
TALLY = {"received": 0, "first": 0.0, "last": 0.0}


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "GET":
        counts = TALLY | {"distinct": len(SEEN)}
        body = json.dumps(counts).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    now = time.time()
    TALLY["received"] += 1
    TALLY["first"] = TALLY["first"] or now
    TALLY["last"] = now
    SEEN.update(value for name, value in scope["headers"] if name == b"webhook-id")
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
