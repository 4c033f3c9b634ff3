"""The dashboard for people: one HTML page and its static assets, all shipped in the
package (no CDN: a call center's supervisor screen must work without internet).

The page only reads the public API (`/api/v1/...`) from the browser, so it shows exactly
what an API client would get for the same filters and zone.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# The page runs no inline code or styles, so the browser may refuse any: an injected
# value that slipped past escaping still cannot run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The page is tiny and must follow the assets it names after an upgrade.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter()


def static_directory() -> Path:
    """Where the assets are: `cdrlog/static` inside the installed package."""
    return Path(str(files("cdrlog.web") / "static"))


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    page = (static_directory() / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.api_route("/wallboard", methods=["GET", "HEAD"], include_in_schema=False)
def wallboard_page() -> HTMLResponse:
    """A full-screen page for a TV on the wall: the floor now, from `/api/v1/now`."""
    page = (static_directory() / "wallboard.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=PAGE_HEADERS)


@router.api_route("/supervisor", methods=["GET", "HEAD"], include_in_schema=False)
def supervisor_page() -> HTMLResponse:
    """Today's queues, the week by hour, agent time and missed calls, for a supervisor."""
    page = (static_directory() / "supervisor.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers=PAGE_HEADERS)


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's assets at `/static`."""
    app.mount("/static", StaticFiles(directory=static_directory()), name="static")
