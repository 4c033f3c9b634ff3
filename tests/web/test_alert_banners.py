"""Alerts on the wallboard and the supervisor view, in a real browser (Debian's Chromium,
driven by Playwright), served by a real `cdrlog serve` whose own alerter raises them: a
red banner per alert raised, naming the rule and its figure, on a TV, a desktop and a
phone; none where no alert is raised. Screenshots are saved to be looked at.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from support import pages
from support.floor import floor
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server
from support.waiting import wait_until

pytestmark = pytest.mark.slow

TV: ViewportSize = {"width": 1920, "height": 1080}
PHONE: ViewportSize = {"width": 390, "height": 844}
RULES = [
    # team1's floor (support.floor): 2 of 4 calls answered within 20 s, one waiting 40 s.
    {"team": "team1", "metric": "service_level_below", "threshold": 0.8},
    {"team": "team1", "queue": "100", "metric": "wait_above", "threshold": 10},
    # Another team's: neither raised nor shown.
    {"team": "team2", "metric": "waiting_above", "threshold": 3},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("alerts")
    log = folder / "server.log"
    extra = ["--alert-check-seconds", "0.5"]
    with running_server(f"sqlite:///{folder / 'cdrlog.db'}", log, extra) as base:
        events = floor(datetime.now(UTC).replace(microsecond=0))
        answer = httpx.post(f"{base}/astercc/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        for rule in RULES:
            made = httpx.post(f"{base}/api/v1/alerts/rules", json=rule, timeout=10)
            assert made.status_code == 201, made.text

        def raised() -> int:
            return len(httpx.get(f"{base}/api/v1/alerts", timeout=10).json()["active"])

        wait_until(lambda: raised() == 2, what="two alerts raised by the server's alerter")
        yield base


def opened(browser: Browser, url: str, viewport: ViewportSize, problems: list[str]) -> Page:
    page = pages.opened(browser, url, viewport, problems)
    status = "wb-status" if "/wallboard" in url else "sv-status"
    expect(by_id(page, status)).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    return page


def shows_the_alerts(page: Page, banner: str) -> None:
    alerts = by_id(page, banner)
    expect(alerts).to_have_count(2, timeout=WAIT_MS)
    sl = page.locator(f'[data-testid="{banner}"][data-metric="service_level_below"]')
    expect(sl).to_contain_text("Service level below 80%")
    expect(sl).to_contain_text("50% over the last 30 min")
    expect(sl).to_contain_text("all queues · since ")
    wait = page.locator(f'[data-testid="{banner}"][data-metric="wait_above"]')
    expect(wait).to_contain_text("A caller waiting over 0:10")
    expect(wait).to_contain_text("queue 100")
    # Red: what a banner is for.
    colour = sl.evaluate("node => getComputedStyle(node).backgroundColor")
    red, green, blue = (int(part) for part in colour[4:-1].split(",")[:3])
    assert red > 120, colour
    assert max(green, blue) < 60, colour


def fits(page: Page, viewport: ViewportSize) -> None:
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= viewport["width"], f"{wide}px wide on a {viewport['width']}px screen"


def save(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


@pytest.mark.parametrize(("viewport", "name"), [(TV, "tv"), (PHONE, "phone")])
def test_the_wallboard_shows_each_alert_raised(
    browser: Browser, server: str, problems: list[str], viewport: ViewportSize, name: str
) -> None:
    page = opened(browser, f"{server}/wallboard?team=team1", viewport, problems)
    shows_the_alerts(page, "wb-alert")
    fits(page, viewport)
    save(page, f"wallboard-alerts-{name}.png")
    page.context.close()


def test_the_wallboard_of_a_queue_shows_its_alerts_and_the_whole_teams(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, f"{server}/wallboard?team=team1&queue=200", TV, problems)
    expect(by_id(page, "wb-alert")).to_have_count(1, timeout=WAIT_MS)
    expect(by_id(page, "wb-alert")).to_have_attribute("data-metric", "service_level_below")
    page.context.close()


@pytest.mark.parametrize(("viewport", "name"), [(TV, "desktop"), (PHONE, "phone")])
def test_the_supervisor_view_shows_each_alert_raised(
    browser: Browser, server: str, problems: list[str], viewport: ViewportSize, name: str
) -> None:
    page = opened(browser, f"{server}/supervisor?team=team1&tz=UTC", viewport, problems)
    shows_the_alerts(page, "sv-alert")
    fits(page, viewport)
    save(page, f"supervisor-alerts-{name}.png")
    page.context.close()


def test_no_banner_where_no_alert_is_raised(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, f"{server}/wallboard?team=team2", TV, problems)
    expect(by_id(page, "wb-alerts")).to_be_hidden()
    page.context.close()
    page = opened(browser, f"{server}/supervisor?team=team2", TV, problems)
    expect(by_id(page, "sv-alerts")).to_be_hidden()
    page.context.close()
