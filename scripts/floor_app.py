"""The floor under any Python push receiver: a bare ASGI app that does the least a
receiver must (read the whole body, parse the form, answer 200 JSON) and nothing else.

`scripts/bench_push.py` serves it with uvicorn exactly as `cdrlog serve` is served, and
drives it with the same client: whatever cdrlog reaches is judged against this.

    .venv/bin/python -m uvicorn floor_app:app --app-dir scripts --port 8090
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _answer(receive, send)


async def _answer(receive: Receive, send: Send) -> None:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    # Parsed (and looked at) as a receiver must, so the floor pays for the form too.
    fields = dict(parse_qsl(b"".join(chunks).decode(), keep_blank_values=True))
    status = "stored" if fields.get("sessionid") else "rejected"
    # The same answer cdrlog gives, so both send the same bytes back.
    body = json.dumps({"status": status}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Answered so that uvicorn starts and stops quietly, as it does for cdrlog.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
