"""How a request reaches the services: the app holds them, typed, and handlers take
them as dependencies (`ServicesDep`), never from an untyped `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from cdrlog.service.services import Services
from cdrlog.web.limits import Buckets


class ServiceApp(FastAPI):
    """FastAPI with the services it serves and the per-token rate limits."""

    services: Services
    token_buckets: Buckets


def app_of(request: Request) -> ServiceApp:
    app = request.app
    if not isinstance(app, ServiceApp):  # pragma: no cover - create_app builds every app
        raise TypeError(f"cdrlog's handlers run in a ServiceApp, not {type(app).__name__}")
    return app


def services(request: Request) -> Services:
    return app_of(request).services


ServicesDep = Annotated[Services, Depends(services)]
