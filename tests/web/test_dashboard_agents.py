"""The dashboard's agent panel in a real browser (Debian's Chromium, driven by Playwright),
on a desktop and on a phone: each agent's state as a chip, and the time in it ticking;
and the page on a phone: nothing wider than the screen, the filters folded away.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from support import pages
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server

pytestmark = pytest.mark.slow

Fields = dict[str, str]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# agentno -> the state its chip shows
SHOWN = {
    "1001": "available",
    "1002": "paused",
    "1003": "after_call_work",
    "1004": "logged_out",
    "1005": "on_call",
}


def floor(now: datetime) -> list[Fields]:
    """team1's agents, one in each state, and the call agent 1005 is on."""

    def at(minutes: float) -> str:
        return (now - timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")

    def agent(agentno: str, event: str, minutes: float) -> Fields:
        return {
            "orgidentity": "team1",
            "agentno": agentno,
            "agentphone": "8" + agentno[1:],
            "AgentGroupId": "100",
            "event": event,
            "eventTime": at(minutes),
        }

    call = {
        "orgidentity": "team1",
        "sessionid": "live-1",
        "calltype": "dialout",
        "source": "CALLEE",
        "agentno": "1005",
    }
    return [
        *(agent(agentno, "login", 90) for agentno in SHOWN),
        agent("1002", "paused", 12),
        agent("1003", "hangupacw", 1.5),
        agent("1004", "logoff", 30),
        call | {"event": "ringing", "eventTime": at(4.5), "activenum": "13800138000"},
        call | {"event": "answer", "eventTime": at(4.2)},
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("agents")
    with running_server(f"sqlite:///{folder / 'cdrlog.db'}", folder / "server.log") as base:
        events = floor(datetime.now(UTC).replace(microsecond=0))
        answer = httpx.post(f"{base}/astercc/events", json=events, timeout=10)
        assert answer.status_code == 200, answer.text
        yield base


def opened(browser: Browser, base: str, viewport: ViewportSize, problems: list[str]) -> Page:
    page = pages.opened(browser, base, viewport, problems)
    expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
    return page


def shows_every_state(page: Page) -> None:
    tiles = by_id(page, "agent-tile")
    expect(tiles).to_have_count(len(SHOWN), timeout=WAIT_MS)
    assert [tile.get_attribute("data-agent") for tile in tiles.all()] == list(SHOWN)
    chips = tiles.get_by_test_id("agent-state")
    assert [chip.get_attribute("data-value") for chip in chips.all()] == list(SHOWN.values())
    expect(chips).to_have_text(["Available", "Paused", "Wrap-up", "Logged out", "On call"])
    expect(by_id(page, "agent-count")).to_have_text(str(len(SHOWN)))


def ticks(page: Page) -> None:
    """The time in state reads like '12m 03s' and moves on between polls."""
    wrapped_up = by_id(page, "agent-tile").nth(2).get_by_test_id("agent-for")
    expect(wrapped_up).to_have_text(re.compile(r"^1m \d\ds$"))
    before = wrapped_up.inner_text()
    expect(wrapped_up).not_to_have_text(before, timeout=3000)
    on_call = by_id(page, "agent-tile").nth(4).get_by_test_id("agent-for")
    expect(on_call).to_have_text(re.compile(r"^4m \d\ds$"))


def test_the_agent_panel_shows_states_on_a_desktop(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, server, DESKTOP, problems)
    shows_every_state(page)
    ticks(page)
    by_id(page, "agent-tile").nth(1).click()
    expect(by_id(page, "filter-agent")).to_have_value("1002")
    expect(by_id(page, "filter-team")).to_have_value("team1")
    save(page, "dashboard-agents-desktop.png")
    page.context.close()


def test_the_agent_panel_fits_a_phone(browser: Browser, server: str, problems: list[str]) -> None:
    page = opened(browser, server, PHONE, problems)
    shows_every_state(page)
    panel = by_id(page, "agent-panel").bounding_box()
    assert panel is not None
    assert panel["x"] >= 0, panel
    assert panel["x"] + panel["width"] <= PHONE["width"], panel
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], f"the page is {wide}px wide on a {PHONE['width']}px phone"
    save(page, "dashboard-agents-phone.png")
    page.context.close()


def test_on_a_phone_the_filters_fold_away(
    browser: Browser, server: str, problems: list[str]
) -> None:
    page = opened(browser, server, PHONE, problems)
    form, toggle = by_id(page, "filter-form"), by_id(page, "filters-toggle")
    expect(form).to_be_hidden()
    toggle.click()
    expect(form).to_be_visible()
    by_id(page, "filter-agent").fill("1003")
    by_id(page, "filter-apply").click()
    expect(form).to_be_hidden()
    # The button names the range too: a phone never shows today's calls as all of them.
    expect(toggle).to_have_text("Filters · Today · 1")
    page.context.close()


def save(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    by_id(page, "agent-panel").screenshot(path=path)
    return path
