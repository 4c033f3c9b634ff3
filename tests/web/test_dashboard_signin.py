"""The dashboard's sign-in in a real browser (Debian's Chromium, driven by Playwright)
against a real `cdrlog serve` that has tokens: the page asks for one, a read token of
team1 shows team1's calls and nothing of team2's, and signing out asks again. Over plain
http on a LAN address, as `serve --host 0.0.0.0` is reached, sign-in works and the page
warns that the token crosses the network unencrypted; a cookie the browser refuses is
explained, not met with the same question again.

Skipped, with the reason shown, where /usr/bin/chromium or Playwright is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from cdrlog.core.pushauth import PushMode
from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE
from conftest import skip_unless_optional
from support.browsers import chromium
from support.pages import ARTIFACTS, WAIT_MS, by_id
from support.servers import lan_address, running_server
from support.teams import call_events
from support.waiting import wait_until

pytestmark = pytest.mark.slow

CALLS = {"team1": 3, "team2": 2}
CALL_SPACING = timedelta(minutes=3)
# The browser logs every refused request as an error; these are the ones the test asks for.
EXPECTED_REFUSAL = re.compile(r"status of 401 \(Unauthorized\)")


# A name for the loopback address that, unlike 127.0.0.1, is no secure context for the
# browser: how the dashboard looks to a colleague on plain http over the network.
PLAIN_HTTP_HOST = "cdr.test"
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
# What a TLS-terminating proxy adds; uvicorn believes it from loopback only (by default).
FORWARDED_HTTPS = {"X-Forwarded-Proto": "https"}


@dataclass(frozen=True)
class Server:
    base: str
    database_url: str
    read_team1: str


@contextmanager
def seeded_server(folder: Path, host: str = "127.0.0.1") -> Iterator[Server]:
    """A server with tokens, and each team's calls of today (the page's default range)."""
    url = f"sqlite:///{folder / 'cdrlog.db'}"
    engine = make_engine(url)
    upgrade(engine)
    store = TokenStore(engine, utc_now)
    pushers = {team: store.create(TokenScope.PUSH, team).token for team in CALLS}
    reader = store.create(TokenScope.READ, "team1").token
    engine.dispose()
    with running_server(url, folder / "server.log", host=host) as base:
        # UTC, as the server reads times without an offset and the pages' zone is.
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        start = max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=0))
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with seeded_server(tmp_path_factory.mktemp("signin")) as started:
        yield started


@pytest.fixture(scope="module")
def lan_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on every address, as the README serves it; `base` is this machine's
    address on its network, not loopback."""
    address = lan_address()
    if address is None:
        skip_unless_optional("this machine has no IPv4 address but loopback to sign in over")
    with seeded_server(tmp_path_factory.mktemp("lan"), host="0.0.0.0") as started:
        port = started.base.rsplit(":", 1)[1]
        yield replace(started, base=f"http://{address}:{port}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(f"--host-resolver-rules=MAP {PLAIN_HTTP_HOST} 127.0.0.1") as launched:
        yield launched


@contextmanager
def opened(
    browser: Browser,
    url: str,
    viewport: ViewportSize = DESKTOP,
    headers: dict[str, str] | None = None,
) -> Iterator[Page]:
    """A page in a fresh context (no cookies); fails on any script or CSP error."""
    context = browser.new_context(viewport=viewport, timezone_id="UTC", extra_http_headers=headers)
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
    # Loopback is no network: no warning about plain http here.
    expect(by_id(page, "signin-insecure")).to_be_hidden()
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
    # Plain http (if on loopback): a Secure cookie is for https (tests/web/test_signin.py).
    assert session["secure"] is False
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


def test_a_colleague_signs_in_over_plain_http_on_the_lan_and_is_warned(
    browser: Browser, lan_server: Server
) -> None:
    with opened(browser, f"{lan_server.base}/", PHONE) as page:
        expect(by_id(page, "signin-panel")).to_be_visible(timeout=WAIT_MS)
        warning = by_id(page, "signin-insecure")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("unencrypted")
        expect(warning).to_contain_text("HTTPS")
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], f"the sign-in is {wide}px wide on a phone"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "dashboard-signin-lan-phone.png")
        sign_in(page, lan_server.read_team1)
        expect(by_id(page, "signin-panel")).to_be_hidden(timeout=WAIT_MS)
        expect(by_id(page, "account-who")).to_have_text("team1 · read")
        expect(by_id(page, "cdr-row")).to_have_count(CALLS["team1"], timeout=WAIT_MS)
        expect(by_id(page, "live-text")).to_have_text("Live", timeout=WAIT_MS)
        session = cookies(page)[SESSION_COOKIE]
        assert (session["secure"], session["httpOnly"], session["sameSite"]) == (
            False,
            True,
            "Strict",
        )


def test_a_cookie_the_browser_refuses_is_explained(browser: Browser, server: Server) -> None:
    """A proxy that says https for a page on http: cdrlog marks the cookie Secure, the
    browser drops it, and the panel says why instead of asking again as if nothing
    happened."""
    port = server.base.rsplit(":", 1)[1]
    url = f"http://{PLAIN_HTTP_HOST}:{port}/"
    with opened(browser, url, headers=FORWARDED_HTTPS) as page:
        expect(by_id(page, "signin-panel")).to_be_visible(timeout=WAIT_MS)
        sign_in(page, server.read_team1)
        expect(by_id(page, "signin-error")).to_contain_text(
            "did not keep the sign-in cookie", timeout=WAIT_MS
        )
        expect(by_id(page, "signin-panel")).to_be_visible()
        assert SESSION_COOKIE not in cookies(page)


def secure_cookies(answer: httpx.Response) -> dict[str, bool]:
    assert answer.status_code == 200, answer.text
    jar: SimpleCookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        jar.load(header)
    return {name: bool(cookie["secure"]) for name, cookie in jar.items()}


def test_the_server_believes_x_forwarded_proto_from_loopback_only(lan_server: Server) -> None:
    """`cdrlog serve` as run: uvicorn trusts the proxy headers of 127.0.0.1 (its
    FORWARDED_ALLOW_IPS), not those of any machine on the network."""
    port = lan_server.base.rsplit(":", 1)[1]
    body = {"token": lan_server.read_team1}
    local = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/session", json=body, headers=FORWARDED_HTTPS
    )
    remote = httpx.post(f"{lan_server.base}/api/v1/session", json=body, headers=FORWARDED_HTTPS)
    plain = httpx.post(f"http://127.0.0.1:{port}/api/v1/session", json=body)
    assert secure_cookies(local) == {SESSION_COOKIE: True, CSRF_COOKIE: True}
    assert secure_cookies(remote) == {SESSION_COOKIE: False, CSRF_COOKIE: False}
    assert secure_cookies(plain) == {SESSION_COOKIE: False, CSRF_COOKIE: False}


def test_the_rollout_notice_names_the_teams_pushing_without_a_token(
    browser: Browser, tmp_path: Path
) -> None:
    with seeded_server(tmp_path) as server:
        engine = make_engine(server.database_url)
        store = TokenStore(engine, utc_now)
        store.set_push_mode("team1", PushMode.OBSERVE)
        tokenless = call_events("team1", "no-token", "1009", datetime.now(UTC).replace(tzinfo=None))
        # The server reads the new mode within its token cache time (two seconds).
        wait_until(
            lambda: httpx.post(f"{server.base}/astercc/team1/events", data=tokenless[0]).is_success,
            what="a tokenless push accepted",
        )
        with opened(browser, server.base, PHONE) as page:
            sign_in(page, server.read_team1)
            notice = by_id(page, "rollout-notice")
            expect(notice).to_be_visible(timeout=WAIT_MS)
            expect(notice).to_contain_text("still pushing without a token: team1 (1 event,")
            expect(notice).to_contain_text("cdrlog token mode TEAM required")
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "dashboard-rollout-phone.png")

            store.set_push_mode("team1", PushMode.REQUIRED)
            page.reload()
            expect(by_id(page, "cdr-row").first).to_be_visible(timeout=WAIT_MS)
            expect(notice).to_be_hidden()
        engine.dispose()
