"""What the dashboard's browser tests share: where screenshots go, how long to wait."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, ViewportSize

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


WAIT_MS = 20_000


def by_id(page: Page, test_id: str) -> Locator:
    return page.get_by_test_id(test_id)


def opened(
    browser: Browser,
    url: str,
    viewport: ViewportSize,
    problems: list[str],
    on_request: Callable[[str], None] | None = None,
) -> Page:
    """`url` in a new page of that size, in UTC, whose script errors go to `problems`
    (and the URL of every request it makes to `on_request`, if given)."""
    page = browser.new_context(viewport=viewport, timezone_id="UTC").new_page()
    if on_request is not None:
        page.on("request", lambda request: on_request(request.url))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.goto(url)
    return page
