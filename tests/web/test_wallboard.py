"""The wallboard in a real browser (Debian's Chromium, driven by Playwright): a TV's
1920x1080 screen and a phone, the floor's figures from `/api/v1/now`, queues chosen by
the URL, the service level coloured against its target, and a screenshot each that must
show something (it is looked at, too).

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
from support.floor import floor
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server

pytestmark = pytest.mark.slow

TV: ViewportSize = {"width": 1920, "height": 1080}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("wallboard")
    with running_server(f"sqlite:///{folder / 'cdrlog.db'}", folder / "server.log") as base:
        events = floor(datetime.now(UTC).replace(microsecond=0))
        answer = httpx.post(f"{base}/astercc/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        yield base


def opened(browser: Browser, url: str, viewport: ViewportSize, problems: list[str]) -> Page:
    page = pages.opened(browser, url, viewport, problems)
    expect(by_id(page, "wb-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    return page


# A blank page of one colour compresses to a few kilobytes at any size; text and tiles
# make it many times that.
NOT_BLANK_BYTES = 20_000


def screenshot(page: Page, name: str) -> None:
    """Saved for a person to look at; here only checked to show more than a blank."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    shot = page.screenshot(path=path)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(shot) > NOT_BLANK_BYTES, f"{name} is {len(shot)} bytes: nearly blank"


def test_the_wallboard_on_a_tv(browser: Browser, server: str, problems: list[str]) -> None:
    page = opened(browser, f"{server}/wallboard?team=team1&target=80", TV, problems)
    # Offered 4 (the waiting call is not yet), answered within 20 s: 2 of 4.
    expect(by_id(page, "service-level")).to_have_text("50%")
    expect(by_id(page, "tile-service-level")).to_have_attribute("data-level", "bad")
    expect(by_id(page, "waiting")).to_have_text("1")
    expect(by_id(page, "longest-wait")).to_contain_text("longest 0:")
    expect(by_id(page, "abandon-rate")).to_have_text("25%")
    expect(by_id(page, "offered")).to_have_text("4")
    expect(by_id(page, "agents-available")).to_contain_text("3")
    expect(by_id(page, "agents-paused")).to_contain_text("1")
    expect(by_id(page, "queue-row")).to_have_count(2)
    expect(by_id(page, "wb-title")).to_have_text("Wallboard · team1")
    # Figures a room can read: the service level at least 100 px high on a TV.
    box = by_id(page, "service-level").bounding_box()
    assert box is not None
    assert box["height"] >= 100, box
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= TV["width"]
    screenshot(page, "wallboard-tv.png")
    page.context.close()


def test_the_url_chooses_the_queues(browser: Browser, server: str, problems: list[str]) -> None:
    page = opened(browser, f"{server}/wallboard?team=team1&queue=200", TV, problems)
    expect(by_id(page, "queue-row")).to_have_count(1)
    expect(by_id(page, "service-level")).to_have_text("100%")
    expect(by_id(page, "tile-service-level")).to_have_attribute("data-level", "good")
    expect(by_id(page, "waiting")).to_have_text("0")
    expect(by_id(page, "wb-title")).to_have_text("Wallboard · team1 · queues 200")
    page.context.close()


def test_the_wallboard_fits_a_phone(browser: Browser, server: str, problems: list[str]) -> None:
    page = opened(browser, f"{server}/wallboard?team=team1", PHONE, problems)
    expect(by_id(page, "service-level")).to_have_text("50%")
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], f"the page is {wide}px wide on a {PHONE['width']}px phone"
    screenshot(page, "wallboard-phone.png")
    page.context.close()


def test_the_url_chooses_the_terms_the_api_is_asked_for(
    browser: Browser, server: str, problems: list[str]
) -> None:
    asked: list[str] = []
    terms = "sl=10&short=3&hours=08:00-20:00&days=mon-fri"
    page = pages.opened(
        browser, f"{server}/wallboard?team=team1&{terms}", TV, problems, on_request=asked.append
    )
    expect(by_id(page, "wb-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    polled = [parse_qs(urlsplit(u).query) for u in asked if "/api/v1/now" in u]
    assert polled
    assert polled[0] == {
        "team": ["team1"],
        "service_level_seconds": ["10"],
        "short_abandon_seconds": ["3"],
        "business_hours": ["08:00-20:00"],
        "business_days": ["mon-fri"],
    }
    page.context.close()
