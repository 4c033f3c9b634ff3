"""The dashboard fits the screen it is on, from a 360 px phone to a 1920 px desktop: the
page never scrolls sideways (wide tables scroll inside their own cards), and it opens on
today in the reader's zone, so one old call cannot squash today's chart into one bar
and a poll counts only today's rows.

A real `cdrlog serve` with today's calls, one call still going on and one call of last
month, shown in Debian's Chromium (Playwright). Each width's full page is saved in the
test's temporary directory. Skipped, with the reason shown, where Chromium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from support.pages import WAIT_MS, by_id
from support.servers import running_server
from support.teams import Fields, call_events

pytestmark = pytest.mark.slow

TODAY_CALLS = 24
# Shown today: today's closed calls and the one still going on; the old one only in "All".
SHOWN_TODAY = TODAY_CALLS + 1
SHOWN_ALL = SHOWN_TODAY + 1
WIDTHS = [360, 390, 768, 1366, 1920]
PHONE = 390
WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def traffic(now: datetime) -> list[Fields]:
    """Calls spread from midnight (UTC, the pages' zone) to now, one of them open, and
    one of last month."""
    midnight = now.replace(hour=0, minute=0, second=0)
    events: list[Fields] = []
    for n in range(TODAY_CALLS):
        start = midnight + (now - midnight) * n / TODAY_CALLS
        events += call_events("team1", f"today-{n}", f"100{n % 6}", start)
    going_on = call_events("team1", "going-on", "1007", max(now - timedelta(seconds=40), midnight))
    events += [event for event in going_on if event["event"] != "hangup"]
    events += call_events("team1", "last-month", "1009", now - timedelta(days=30))
    return events


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("layout")
    with running_server(f"sqlite:///{folder / 'cdrlog.db'}", folder / "server.log") as base:
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        answer = httpx.post(f"{base}/astercc/events", json=traffic(now), timeout=10)
        assert answer.status_code == 200, answer.text
        yield base


def opened(browser: Browser, base: str, width: int, problems: list[str]) -> Page:
    viewport: ViewportSize = {"width": width, "height": 900 if width > PHONE else 844}
    page = browser.new_context(viewport=viewport, timezone_id="UTC").new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.goto(base)
    expect(by_id(page, "cdr-row")).to_have_count(SHOWN_TODAY, timeout=WAIT_MS)
    expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
    return page


def assert_fits(page: Page, what: str) -> None:
    wide, screen = page.evaluate(WIDTH)
    assert wide <= screen, f"{what}: the page is {wide}px wide on a {screen}px screen"


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_is_wider_than_the_screen(
    browser: Browser, server: str, tmp_path: Path, width: int
) -> None:
    problems: list[str] = []
    page = opened(browser, server, width, problems)
    assert_fits(page, "the dashboard")
    page.screenshot(path=tmp_path / f"dashboard-{width}.png", full_page=True)
    if width <= PHONE:
        by_id(page, "filters-toggle").click()
        expect(by_id(page, "filter-form")).to_be_visible()
        assert_fits(page, "the filters, unfolded")
        page.screenshot(path=tmp_path / f"dashboard-{width}-filters.png")
    by_id(page, "cdr-row").first.click()
    expect(by_id(page, "timeline-event").first).to_be_visible(timeout=WAIT_MS)
    assert_fits(page, "a call's timeline")
    page.screenshot(path=tmp_path / f"dashboard-{width}-timeline.png")
    page.context.close()
    assert problems == []


def test_the_page_opens_on_today_and_asks_only_for_today(
    browser: Browser, server: str, tmp_path: Path
) -> None:
    problems: list[str] = []
    page = opened(browser, server, 1366, problems)
    expect(by_id(page, "range-today")).to_have_attribute("aria-pressed", "true")
    expect(by_id(page, "cdr-total")).to_have_text(str(SHOWN_TODAY))
    assert parse_qs(urlsplit(page.url).query)["range"] == ["today"]
    today = datetime.now(UTC).date()
    bounds = {"from": [f"{today}T00:00"], "to": [f"{today + timedelta(days=1)}T00:00"]}
    with page.expect_request(lambda request: "/api/v1/cdrs?" in request.url) as polled:
        pass
    asked = parse_qs(urlsplit(polled.value.url).query)
    assert {name: asked.get(name) for name in bounds} == bounds
    # Today's hours up to now, not a month of empty ones.
    labels = page.evaluate(
        '() => Chart.getChart(document.getElementById("hour-chart")).data.labels.length'
    )
    assert 12 <= labels <= 25, labels

    by_id(page, "range-all").click()
    expect(by_id(page, "cdr-total")).to_have_text(str(SHOWN_ALL), timeout=WAIT_MS)
    expect(by_id(page, "range-all")).to_have_attribute("aria-pressed", "true")
    expect(by_id(page, "filter-from")).to_have_value("")
    assert parse_qs(urlsplit(page.url).query)["range"] == ["all"]
    page.screenshot(path=tmp_path / "dashboard-all.png")
    page.context.close()
    assert problems == []
