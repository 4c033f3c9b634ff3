"""The dashboard's sign-in in a real browser (Debian's Chromium, driven by Playwright)
against a real `cdrlog serve` that has tokens: the page asks for one, a read token of
team1 shows team1's calls and nothing of team2's, and signing out asks again.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE
from support.browsers import chromium
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import running_server
from support.teams import call_events

pytestmark = pytest.mark.slow

CALLS = {"team1": 3, "team2": 2}
CALL_SPACING = timedelta(minutes=3)
# The browser logs every refused request as an error; these are the ones the test asks for.
EXPECTED_REFUSAL = re.compile(r"status of 401 \(Unauthorized\)")


# A name for the loopback address that, unlike 127.0.0.1, is no secure context for the
# browser: how the dashboard looks to a colleague on plain http over the network.
PLAIN_HTTP_HOST = "cdr.test"


@dataclass(frozen=True)
class Server:
    base: str
    database_url: str
    read_team1: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("signin")
    url = f"sqlite:///{folder / 'cdrlog.db'}"
    engine = make_engine(url)
    upgrade(engine)
    store = TokenStore(engine, utc_now)
    pushers = {team: store.create(TokenScope.PUSH, team).token for team in CALLS}
    reader = store.create(TokenScope.READ, "team1").token
    engine.dispose()
    with running_server(url, folder / "server.log") as base:
        start = datetime.now().replace(microsecond=0) - timedelta(hours=1)
        for team, count in CALLS.items():
            events = [
                event
                for n in range(count)
                for event in call_events(team, f"{team}-{n}", f"100{n}", start + n * CALL_SPACING)
            ]
            answer = httpx.post(
                f"{base}/astercc/{team}/events", json=events, params={"token": pushers[team]}
            )
            assert answer.status_code == 200, answer.text
        yield Server(base, url, reader)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1") as launched:
        yield launched


@contextmanager
def opened(browser: Browser, url: str) -> Iterator[Page]:
    """A page in a fresh context (no cookies); fails on any script or CSP error."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not EXPECTED_REFUSAL.search(message.text)
            else None
        ),
    )
    page.goto(url)
    yield page
    context.close()
    # CSP refusals and script errors surface only here, in the browser's console.
    assert problems == []


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    with opened(browser, server.base) as page:
        yield page


def sign_in(page: Page, token: str) -> None:
    by_id(page, "signin-token").fill(token)
    by_id(page, "signin-submit").click()


def cookies(page: Page) -> dict[str, dict[str, object]]:
    return {str(c.get("name")): dict(c) for c in page.context.cookies()}


def test_a_read_token_signs_in_sees_its_team_only_and_signs_out(page: Page, server: Server) -> None:
    panel = by_id(page, "signin-panel")
    expect(panel).to_be_visible(timeout=WAIT_MS)
    expect(by_id(page, "signin-token")).to_have_attribute("type", "password")
    expect(by_id(page, "account")).to_be_hidden()
    expect(by_id(page, "cdr-row")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-signin.png")

    sign_in(page, "cdrlog_not-a-token")
    expect(by_id(page, "signin-error")).to_have_text("unknown or revoked token")
    expect(panel).to_be_visible()

    sign_in(page, server.read_team1)
    expect(panel).to_be_hidden(timeout=WAIT_MS)
    expect(by_id(page, "account-who")).to_have_text("team1 · read")
    rows = by_id(page, "cdr-row")
    expect(rows).to_have_count(CALLS["team1"], timeout=WAIT_MS)
    expect(by_id(page, "cdr-total")).to_have_text(str(CALLS["team1"]))
    assert set(rows.locator('[data-col="orgidentity"]').all_inner_texts()) == {"team1"}
    expect(by_id(page, "agent-row")).to_have_count(CALLS["team1"], timeout=WAIT_MS)
    assert "team2" not in page.locator("main").inner_text()
    expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
    session = cookies(page)[SESSION_COOKIE]
    assert session["httpOnly"] is True
    assert session["secure"] is True
    assert session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").count(SESSION_COOKIE) == 0
    page.screenshot(path=ARTIFACTS / "dashboard-signed-in.png")

    csrf = cookies(page)[CSRF_COOKIE]["value"]
    with page.expect_request(lambda request: request.method == "DELETE") as signing_out:
        by_id(page, "sign-out").click()
    assert signing_out.value.headers.get("x-csrf-token") == csrf
    expect(panel).to_be_visible(timeout=WAIT_MS)
    expect(by_id(page, "account")).to_be_hidden()
    expect(rows).to_have_count(0)
    assert SESSION_COOKIE not in cookies(page)
    assert page.request.get(f"{server.base}/api/v1/cdrs").status == 401
    page.keyboard.press("Escape")
    expect(panel).to_be_visible()


def test_a_revoked_token_brings_the_sign_in_back(page: Page, server: Server) -> None:
    engine = make_engine(server.database_url)
    store = TokenStore(engine, utc_now)
    created = store.create(TokenScope.READ, "team1")
    sign_in(page, created.token)
    expect(by_id(page, "cdr-row")).to_have_count(CALLS["team1"], timeout=WAIT_MS)
    assert store.revoke(created.id)
    engine.dispose()
    expect(by_id(page, "signin-panel")).to_be_visible(timeout=WAIT_MS)
    expect(by_id(page, "signin-error")).to_contain_text("no longer accepted")
    expect(by_id(page, "cdr-row")).to_have_count(0)


def test_on_plain_http_the_browser_keeps_no_session_and_the_page_says_why(
    browser: Browser, server: Server
) -> None:
    port = server.base.rsplit(":", 1)[1]
    with opened(browser, f"http://{PLAIN_HTTP_HOST}:{port}/") as page:
        expect(by_id(page, "signin-panel")).to_be_visible(timeout=WAIT_MS)
        sign_in(page, server.read_team1)
        expect(by_id(page, "signin-error")).to_contain_text("use https", timeout=WAIT_MS)
        expect(by_id(page, "signin-panel")).to_be_visible()
        assert SESSION_COOKIE not in cookies(page)
