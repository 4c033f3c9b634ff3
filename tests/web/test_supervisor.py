"""The supervisor view in a real browser (Debian's Chromium, driven by Playwright), on a
desktop and on a phone: today's service level against its target, the queues, the week
by hour, agent time and the missed calls nobody has dealt with, each read from the API.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from support import pages
from support.floor import floor, missed_and_called_back
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server

pytestmark = pytest.mark.slow

DESKTOP: ViewportSize = {"width": 1440, "height": 1000}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("supervisor")
    with running_server(f"sqlite:///{folder / 'cdrlog.db'}", folder / "server.log") as base:
        now = datetime.now(UTC).replace(microsecond=0)
        events = [*floor(now), *missed_and_called_back(now)]
        answer = httpx.post(f"{base}/astercc/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        yield base


def opened(browser: Browser, url: str, viewport: ViewportSize, problems: list[str]) -> Page:
    page = pages.opened(browser, url, viewport, problems)
    expect(by_id(page, "sv-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    return page


def shows_the_floor(page: Page) -> None:
    # Offered 6: answered in 8 s and 5 s (within 20), in 45 s, and three abandoned.
    expect(by_id(page, "sv-service-level")).to_have_text("33%")
    expect(by_id(page, "sv-tile-service-level")).to_have_attribute("data-level", "bad")
    expect(by_id(page, "sv-abandon-rate")).to_have_text("50%")
    expect(by_id(page, "sv-offered")).to_have_text("6")
    expect(by_id(page, "sv-waiting")).to_have_text("1")
    # 100 and 200; the outbound callback's group (no queue, no agent) is left out
    expect(by_id(page, "sv-queue-row")).to_have_count(2)
    expect(by_id(page, "sv-agent-row")).to_have_count(4)
    # The caller called back and reached is resolved; the two others are listed.
    expect(by_id(page, "sv-missed-row")).to_have_count(2)
    cells = by_id(page, "sv-heat-cell")
    expect(cells).to_have_count(7 * 24)
    counted = [int(text) for text in cells.all_inner_texts() if text.strip()]
    assert sum(counted) == 6


def test_the_supervisor_view_on_a_desktop(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, f"{server}/supervisor?team=team1&tz=UTC", DESKTOP, problems)
    shows_the_floor(page)
    expect(by_id(page, "sv-title")).to_have_text("Supervisor · team1")
    expect(by_id(page, "sv-wallboard")).to_have_attribute("href", "/wallboard?tz=UTC&team=team1")
    save(page, "supervisor-desktop.png")
    page.context.close()


def test_the_supervisor_view_fits_a_phone(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, f"{server}/supervisor?team=team1&tz=UTC", PHONE, problems)
    shows_the_floor(page)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], f"the page is {wide}px wide on a {PHONE['width']}px phone"
    save(page, "supervisor-phone.png")
    page.context.close()


def save(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = page.screenshot(path=ARTIFACTS / name, full_page=True)
    assert len(shot) > 20_000, f"{name} is nearly blank"


def test_the_url_chooses_the_terms_the_api_is_asked_for(
    browser: Browser, server: str, problems: list[str]
) -> None:
    asked: list[str] = []
    url = f"{server}/supervisor?team=team1&tz=UTC&sl=10&hours=08:00-20:00&days=mon-fri"
    page = pages.opened(browser, url, DESKTOP, problems, on_request=asked.append)
    expect(by_id(page, "sv-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    terms = {
        "team": ["team1"],
        "service_level_seconds": ["10"],
        "business_hours": ["08:00-20:00"],
        "business_days": ["mon-fri"],
    }
    for path in ("/api/v1/now", "/api/v1/stats"):
        polled = [parse_qs(urlsplit(u).query) for u in asked if urlsplit(u).path == path]
        assert polled, path
        assert all(terms.items() <= query.items() for query in polled), (path, polled)
    page.context.close()
