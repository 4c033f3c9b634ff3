"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
`cdrlog serve` that `cdrlog simulate` feeds while the page is open.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing
(`apt-get install chromium`; Playwright's own browser downloads are never used).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from support.browsers import chromium
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server
from support.waiting import wait_until

pytestmark = pytest.mark.slow

BROWSER_ZONE = "Europe/Berlin"
# +05:30 all year round: no daylight saving to reason about, and unlike any Berlin offset.
OTHER_ZONE = "Asia/Kolkata"
CALLS = 40
# Slow enough (about six seconds for 40 calls) that the page sees calls arrive.
EVENTS_PER_SECOND = 40


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    with running_server(sqlite_url, tmp_path / "server.log") as base:
        if httpx.get(f"{base}/").status_code != 200:
            pytest.fail("GET / is not served: dashboard.router is not wired into create_app")
        yield base


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, timezone_id=BROWSER_ZONE, accept_downloads=True
    )
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    opened.goto(server)
    yield opened
    context.close()
    # CSP refusals and script errors surface only here, in the browser's console.
    assert problems == []


def simulate(base: str, log: Path, *extra: str, calls: int = CALLS) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "cdrlog", "simulate", "--url", base]
    command += ["--calls", str(calls), "--teams", "2", "--seed", "7", *extra]
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


def api(base: str, path: str, **params: str) -> httpx.Response:
    answer = httpx.get(f"{base}{path}", params=params, timeout=10)
    answer.raise_for_status()
    return answer


def shown_count(page: Page, test_id: str) -> int:
    return int(by_id(page, test_id).inner_text().replace(",", "") or "0")


def watch_calls_arrive(page: Page, base: str, log: Path) -> None:
    """The tables fill while the simulator sends, without a reload."""
    expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
    expect(by_id(page, "cdr-rows")).to_have_text("Waiting for calls…")
    sender = simulate(base, log, "--rate", str(EVENTS_PER_SECOND))
    totals: list[int] = []
    in_progress: list[int] = []
    while sender.poll() is None:
        totals.append(shown_count(page, "cdr-total"))
        in_progress.append(shown_count(page, "open-count"))
        time.sleep(0.2)
    assert sender.returncode == 0, log.read_text()
    expect(by_id(page, "cdr-total")).to_have_text(str(CALLS), timeout=WAIT_MS)
    expect(by_id(page, "cdr-row")).to_have_count(CALLS)
    expect(by_id(page, "open-count")).to_have_text("0", timeout=WAIT_MS)
    assert any(0 < total < CALLS for total in totals), f"never seen arriving: {totals}"
    assert max(in_progress) > 0, "no call was ever shown in progress"


CHART_SUMS = """() => Chart.getChart(document.getElementById("hour-chart"))
    .data.datasets.map((set) => set.data.reduce((total, value) => total + value, 0))"""


def check_chart(page: Page, base: str, zone: str) -> None:
    """The hourly bars add up to the calls of the filter, answered and not."""
    hours = api(base, "/api/v1/stats", group_by="hour", tz=zone).json()["rows"]
    answered = sum(row["answered"] for row in hours)
    wanted = [answered, CALLS - answered]
    wait_until(lambda: page.evaluate(CHART_SUMS) == wanted, what=f"the chart shows {wanted}")


def busiest_agent(base: str) -> str:
    rows = api(base, "/api/v1/stats", group_by="agent").json()["rows"]
    return str(max(rows, key=lambda row: row["calls"])["group"])


def filter_by_agent(page: Page, base: str, agent: str) -> list[str]:
    """Every row shown is the agent's, and all the agent's CDRs are shown."""
    expected = api(base, "/api/v1/cdrs", agent=agent, tz=BROWSER_ZONE).json()
    by_id(page, "filter-agent").fill(agent)
    by_id(page, "filter-agent").press("Enter")
    expect(by_id(page, "cdr-total")).to_have_text(str(expected["total"]), timeout=WAIT_MS)
    rows = by_id(page, "cdr-row")
    expect(rows).to_have_count(expected["total"], timeout=WAIT_MS)
    assert rows.locator('[data-col="agentno"]').all_inner_texts() == [agent] * expected["total"]
    shown = [str(row.get_attribute("data-diallogid")) for row in rows.all()]
    assert shown == [cdr["diallogid"] for cdr in expected["cdrs"]]
    teams = api(base, "/api/v1/stats", group_by="agent", agent=agent).json()["rows"]
    agent_cells = by_id(page, "agent-row").locator('[data-col="agent"]')
    expect(agent_cells).to_have_text([agent] * len(teams), timeout=WAIT_MS)
    return shown


def open_timeline(page: Page, base: str, agent: str) -> None:
    """A click on a CDR opens its call's events, as the API has them."""
    row = by_id(page, "cdr-row").first
    diallogid = str(row.get_attribute("data-diallogid"))
    cdr_id = str(row.get_attribute("data-key"))
    detail = api(base, f"/api/v1/cdrs/{cdr_id}", tz=BROWSER_ZONE).json()
    row.click()
    panel = by_id(page, "timeline")
    expect(panel).to_be_visible()
    expect(by_id(page, "timeline-title")).to_have_text(f"Call {diallogid}")
    expect(panel.locator('dd[data-field="agent"]')).to_have_text(agent)
    events = by_id(page, "timeline-event")
    expect(events).to_have_count(len(detail["events"]))
    names = [str(event.get_attribute("data-event")) for event in events.all()]
    assert names == [event["event"].lower() for event in detail["events"]]
    assert {"ringing", "hangup"} <= set(names)
    times = events.locator('[data-col="event_time"] time')
    assert [t.get_attribute("datetime") for t in times.all()] == [
        event["event_time"] for event in detail["events"]
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-timeline.png")
    by_id(page, "timeline-close").click()
    expect(panel).to_be_hidden()


def download_csv(page: Page, base: str, agent: str, shown: list[str], folder: Path) -> None:
    """The download is exactly the filtered view: same filters, same zone, same rows."""
    link = by_id(page, "csv-link")
    # The page opens on today (in its zone), and says so in every request it makes.
    today = datetime.now(ZoneInfo(BROWSER_ZONE)).date()
    tonight = today + timedelta(days=1)
    bounds = {"from": f"{today}T00:00", "to": f"{tonight}T00:00"}
    query = urlencode({"format": "csv", **bounds, "agent": agent, "tz": BROWSER_ZONE})
    assert link.get_attribute("href") == f"/api/v1/cdrs?{query}"
    with page.expect_download() as started:
        link.click()
    saved = folder / "download.csv"
    started.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    lines = api(base, "/api/v1/cdrs", agent=agent, format="jsonl").text.splitlines()
    assert [row["diallogid"] for row in rows] == [json.loads(line)["diallogid"] for line in lines]
    assert [row["diallogid"] for row in rows] == shown
    assert {row["agentno"] for row in rows} == {agent}
    start = datetime.fromisoformat(rows[0]["starttime"])
    assert start.utcoffset() == start.astimezone(ZoneInfo(BROWSER_ZONE)).utcoffset()


def switch_zone(page: Page) -> None:
    """Another zone shows the same instants at that zone's offset, and exports in it."""
    first = by_id(page, "cdr-row").first.locator('[data-col="starttime"] time')
    before = datetime.fromisoformat(str(first.get_attribute("datetime")))
    before_text = first.inner_text()
    assert before.utcoffset() == before.astimezone(ZoneInfo(BROWSER_ZONE)).utcoffset()
    by_id(page, "tz-select").select_option(OTHER_ZONE)
    expect(first).to_have_attribute("datetime", before.astimezone(ZoneInfo(OTHER_ZONE)).isoformat())
    assert first.inner_text() != before_text
    every = by_id(page, "cdr-row").locator('[data-col="starttime"] time')
    assert all(str(t.get_attribute("datetime")).endswith("+05:30") for t in every.all())
    href = str(by_id(page, "csv-link").get_attribute("href"))
    assert href.endswith("&tz=Asia%2FKolkata")


def test_a_supervisor_watches_filters_opens_downloads_and_changes_zone(
    page: Page, server: str, tmp_path: Path
) -> None:
    watch_calls_arrive(page, server, tmp_path / "simulate.log")
    check_chart(page, server, BROWSER_ZONE)
    agent = busiest_agent(server)
    shown = filter_by_agent(page, server, agent)
    open_timeline(page, server, agent)
    download_csv(page, server, agent, shown, tmp_path)
    switch_zone(page)
    by_id(page, "filter-reset").click()
    expect(by_id(page, "cdr-row")).to_have_count(CALLS, timeout=WAIT_MS)
    check_chart(page, server, OTHER_ZONE)
    expect(by_id(page, "agent-row").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)


def test_load_more_pages_through_every_call_and_polling_pauses_when_hidden(
    page: Page, server: str, tmp_path: Path
) -> None:
    log = tmp_path / "simulate.log"
    assert simulate(server, log, calls=120).wait(timeout=120) == 0, log.read_text()
    expect(by_id(page, "cdr-total")).to_have_text("120", timeout=WAIT_MS)
    rows = by_id(page, "cdr-row")
    for shown in (50, 100, 120):
        expect(rows).to_have_count(shown, timeout=WAIT_MS)
        if shown < 120:
            by_id(page, "load-more").click()
    expect(by_id(page, "load-more")).to_be_hidden()
    lines = api(server, "/api/v1/cdrs", format="jsonl").text.splitlines()
    listed = [json.loads(line)["diallogid"] for line in lines]
    assert [row.get_attribute("data-diallogid") for row in rows.all()] == listed
    pause_while_hidden(page)
    # Polling goes on over all the loaded pages, not only the first.
    expect(rows).to_have_count(120)


def pause_while_hidden(page: Page) -> None:
    """A hidden tab sends no request; showing it again resumes at once."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.evaluate(VISIBILITY, True)
    expect(by_id(page, "live-text")).to_have_text("Paused while hidden")
    asked.clear()
    page.wait_for_timeout(5000)
    assert asked == []
    page.evaluate(VISIBILITY, False)
    expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
    assert any("/api/v1/cdrs" in url for url in asked)


# Headless pages are never hidden: the test tells the page it is, the way a browser does.
VISIBILITY = """(hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event("visibilitychange"));
}"""
