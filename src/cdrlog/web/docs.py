"""GET /docs: the OpenAPI reference, served from the package (it must work offline)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/docs", include_in_schema=False)
def api_reference() -> HTMLResponse:
    page = files("cdrlog.web") / "static" / "docs.html"
    return HTMLResponse(page.read_text(encoding="utf-8"))
