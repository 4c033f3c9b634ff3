"""The Push event URLs served as plain ASGI, ahead of the framework.

Every event of a call center arrives here, so this path is kept short: the framework's
middleware, router, dependency solving and per-route wrapping cost more than receiving
an event does. POSTs to a Push event URL go through the same guard (limits, security
headers) straight to `push.receive`; everything else stays with FastAPI, whose OpenAPI
document gets these URLs from `push.push_operations`. Errors are answered as the app's
own handlers answer them.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cdrlog.web.deps import ServiceApp
from cdrlog.web.limits import Buckets, Guard
from cdrlog.web.push import push_operations, receive

TEAM_URL = re.compile(r"/astercc/([^/]+)/events")
ANY_TEAM_URL = "/astercc/events"
TEAM_KEY = "cdrlog.push_team"


def parse_push_url(path: str) -> tuple[bool, str | None]:
    """Whether `path` is a Push event URL, and the team it names (None: any team).
    A trailing slash is the same URL: a redirect would repeat the `?token=` it carries."""
    path = path.removesuffix("/")
    if path == ANY_TEAM_URL:
        return True, None
    found = TEAM_URL.fullmatch(path)
    return (True, found.group(1)) if found else (False, None)


class PushFirst(ServiceApp):
    """The app, with requests to the Push event URLs taken before FastAPI's stack."""

    _pushes: ASGIApp | None = None

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = super().openapi()
            # As FastAPI writes its own paths: without the null defaults of optional fields.
            pushes = jsonable_encoder(push_operations(), exclude_none=True)
            document["paths"] = pushes | document["paths"]
            self.openapi_schema = document
        return self.openapi_schema

    def serve_pushes(self, by_address: Buckets) -> None:
        """From now on, answer pushes directly, under the same per-address limit."""
        self._pushes = ServerErrorMiddleware(Guard(_push, by_address))

    async def __call__(self, scope: Scope, receive_message: Receive, send: Send) -> None:
        if self._pushes is not None and scope["type"] == "http":
            is_push, team = parse_push_url(scope["path"])
            if is_push:
                scope["app"] = self
                scope[TEAM_KEY] = team
                await self._pushes(scope, receive_message, send)
                return
        await super().__call__(scope, receive_message, send)


async def _push(scope: Scope, receive_message: Receive, send: Send) -> None:
    request = Request(scope, receive_message)
    response: Response
    if request.method != "POST":
        response = JSONResponse({"detail": "Method Not Allowed"}, 405, {"Allow": "POST"})
        await response(scope, receive_message, send)
        return
    try:
        response = await receive(request, scope[TEAM_KEY])
    except HTTPException as error:
        response = JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )
    except Exception as error:
        handled = await _handled(request, error)
        if handled is None:
            raise
        response = handled
    await response(scope, receive_message, send)


async def _handled(request: Request, error: Exception) -> Response | None:
    """The answer of the app's own handler for `error`'s class, if it has one."""
    handlers = request.app.exception_handlers
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None and kind is not Exception:
            answer = handler(request, error)
            return await answer if inspect.isawaitable(answer) else answer  # type: ignore[no-any-return]
    return None
