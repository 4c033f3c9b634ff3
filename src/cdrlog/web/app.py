"""create_app: the one place the service is assembled."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from cdrlog import __version__
from cdrlog.service import metrics
from cdrlog.service.alerter import Alerter
from cdrlog.service.batcher import Batcher
from cdrlog.service.clock import Clock, utc_now
from cdrlog.service.dispatcher import Dispatcher
from cdrlog.service.ingest import Ingestor
from cdrlog.service.services import build_services
from cdrlog.service.settings import Settings
from cdrlog.service.spool import SpoolUnavailable
from cdrlog.web import (
    agentreport,
    alerts,
    api,
    dashboard,
    docs,
    hooks,
    missed,
    now,
    operators,
    push,
    signin,
)
from cdrlog.web.auth import metrics_reader
from cdrlog.web.cdrview import renderer
from cdrlog.web.limits import Buckets, Guard
from cdrlog.web.pushpath import PushFirst
from cdrlog.web.redaction import RedactTokens

log = logging.getLogger(__name__)
DRAIN_EVERY = 1.0
# Each agent's figures are worked out once per round, however many events it had.
KEEP_AGENTS_EVERY = 5.0


def create_app(settings: Settings, engine: Engine | None = None, clock: Clock = utc_now) -> FastAPI:
    """The ASGI app. The engine is made from the settings unless one is handed in."""
    wired = build_services(settings, engine, clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = wired.start_writers()
        # Built now rather than by the first request, which would stall the event loop.
        app.openapi()
        # Read the tokens now, so a database lost before the first push finds them known.
        with suppress(OperationalError, InterfaceError):
            await asyncio.to_thread(wired.tokens.known)
        dispatcher = Dispatcher(
            wired.engine,
            wired.hooks,
            renderer(wired.reader, settings.display_zone),
            wired.clock,
            retry_for=timedelta(hours=settings.hook_retry_hours),
            timeout=settings.hook_timeout_seconds,
            allow_private=settings.allow_private_targets,
        )
        dispatcher.start()
        alerter = Alerter(
            wired.engine,
            wired.hooks,
            wired.clock,
            every=settings.alert_check_seconds,
            longest_call=timedelta(minutes=settings.max_call_minutes),
        )
        alerter.start()
        tasks = [
            asyncio.create_task(_close_stale_calls(wired.ingestor, settings.timeout_check_seconds)),
            asyncio.create_task(_drain_spool(batcher, DRAIN_EVERY)),
            asyncio.create_task(_keep_agents_up(wired.ingestor, KEEP_AGENTS_EVERY)),
        ]
        # What startup made lives as long as the process: out of the collector's reach,
        # a full collection no longer walks it (a pause of milliseconds per push burst).
        gc.freeze()
        yield
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(alerter.close)
        await asyncio.to_thread(dispatcher.close)
        # Requests in flight have been answered by now; store what is still queued.
        wired.close()

    app = PushFirst(
        title="cdrlog",
        version=__version__,
        summary="asterCC push events in, one correct CDR per call out.",
        lifespan=lifespan,
        # The reference is served from the package (`docs.router`), not from a CDN.
        docs_url=None,
        redoc_url=None,
        # Every body but a push's (which has its own limit and fast path) is small.
        max_body_size=settings.max_request_bytes,
        # A redirect's Location repeats the query string, and with it a `?token=`.
        redirect_slashes=False,
    )
    app.services = wired
    app.token_buckets = Buckets(settings.rate_per_second, settings.rate_burst)
    by_address = Buckets(settings.rate_per_second, settings.rate_burst)
    app.add_middleware(Guard, by_address=by_address)
    app.serve_pushes(by_address)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
    app.include_router(push.router)
    app.include_router(api.router)
    app.include_router(missed.router)
    app.include_router(operators.router)
    app.include_router(agentreport.router)
    app.include_router(now.router)
    app.include_router(hooks.router)
    app.include_router(alerts.rules_router)
    app.include_router(alerts.router)
    app.include_router(docs.router)
    app.include_router(dashboard.router)
    app.include_router(signin.router)
    dashboard.mount_static(app)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(DataError, _value_refused)
    app.add_exception_handler(SpoolUnavailable, _database_unavailable)
    app.add_exception_handler(RequestValidationError, api.invalid_request)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (once tokens exist: a metrics or admin token)",
        dependencies=[Depends(metrics_reader)],
    )
    def prometheus() -> Response:
        metrics.SPOOL_DEPTH.set(wired.spool.depth())
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Whether events go straight to the database, or wait in the spool",
    )
    def readyz() -> dict[str, Any]:
        # Degraded is still ready: events are accepted (into the spool) all the same.
        try:
            wired.ingestor.ping()
            database = "up"
        except DBAPIError:
            database = "unreachable"
        depth = wired.spool.depth()
        ready = database == "up" and depth == 0
        return {
            "status": "ready" if ready else "degraded",
            "database": database,
            "spool_depth": depth,
        }

    return app


async def _close_stale_calls(ingestor: Ingestor, every: float) -> None:
    """Calls whose hangup never came are closed as `timeout`; every receiver may do it."""
    while True:
        await asyncio.sleep(every)
        try:
            closed = await run_in_threadpool(ingestor.close_stale)
        except DBAPIError as error:
            log.warning("closing stale calls failed, will retry: %s", error)
            continue
        if closed:
            log.info("closed %d calls without a hangup as timeout", closed)


async def _keep_agents_up(ingestor: Ingestor, every: float) -> None:
    """Agents' hours and presence worked out soon after their events, so that the
    floor's view and reports, which would do it first, seldom have any to do."""
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(ingestor.keep_agents_up)
        except DBAPIError as error:
            log.warning("keeping agents' figures failed, will retry: %s", error)


async def _drain_spool(batcher: Batcher, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            drained = await run_in_threadpool(batcher.drain)
        except (OperationalError, InterfaceError):
            continue  # still away; the events wait on disk
        if drained:
            log.info("stored %d spooled events", drained)


async def _value_refused(request: Request, error: Exception) -> JSONResponse:
    # Input the database itself refuses (a NUL in a filter for PostgreSQL, say) is bad
    # input: retrying cannot help, so it is a 400 and never the 503 of an outage.
    return JSONResponse(
        {"status": "rejected", "error": "a value in the request is not acceptable to the database"},
        status_code=400,
    )


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    # Nothing was acknowledged: the sender keeps the event and sends it again.
    return JSONResponse(
        {"status": "unavailable", "error": "the database cannot be reached; retry"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def app_from_environment() -> FastAPI:
    """The app of one `serve --workers N` process, from the CDRLOG_* environment."""
    return create_app(Settings())
