"""The Push event URLs served as plain ASGI, ahead of the framework.

Every event of a call center arrives here, so this path is kept short: the framework's
middleware, router, dependency solving and per-route wrapping cost more than receiving
an event does. Requests to a Push event URL go to `push.PushReceiver`, which applies the
guard's limit and headers itself; everything else stays with FastAPI, whose OpenAPI
document gets these URLs from `push.push_operations`. Errors are answered as the app's
own handlers answer them.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.types import Receive, Scope, Send

from cdrlog.web.deps import ServiceApp
from cdrlog.web.limits import Buckets
from cdrlog.web.push import PushReceiver, push_operations

TEAM_URL = re.compile(r"/astercc/([^/]+)/events")
ANY_TEAM_URL = "/astercc/events"

_DOCUMENTS: dict[tuple[Any, ...], dict[str, Any]] = {}


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

    _pushes: PushReceiver | None = None

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            # Writing the document takes a tenth of a second of CPU; every app a process
            # builds with the same routes (each test's, each worker's) has the same one.
            key = self._routes_key()
            document = _DOCUMENTS.get(key)
            if document is None:
                document = super().openapi()
                # As FastAPI writes its own paths: without the null defaults of optional
                # fields.
                pushes = jsonable_encoder(push_operations(), exclude_none=True)
                document["paths"] = pushes | document["paths"]
                _DOCUMENTS[key] = document
            self.openapi_schema = copy.deepcopy(document)
        return self.openapi_schema

    def _routes_key(self) -> tuple[Any, ...]:
        routes = tuple(
            (
                type(route).__name__,
                getattr(route, "path", None),
                tuple(sorted(getattr(route, "methods", None) or ())),
                getattr(getattr(route, "endpoint", None), "__qualname__", None),
            )
            for route in self.routes
        )
        return (self.title, self.version, self.summary, routes)

    def serve_pushes(self, by_address: Buckets) -> None:
        """From now on, answer pushes directly, under the same per-address limit."""
        self._pushes = PushReceiver(self, by_address)

    async def __call__(self, scope: Scope, receive_message: Receive, send: Send) -> None:
        pushes = self._pushes
        if pushes is not None and scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/astercc/"):
                is_push, team = parse_push_url(path)
                if is_push:
                    await pushes(scope, receive_message, send, team)
                    return
        await super().__call__(scope, receive_message, send)
