"""The dashboard's session cookies are `Secure` exactly when the browser talks https:
directly, or through a proxy uvicorn trusts, which says so in `X-Forwarded-Proto`. Over
plain http they are not, or a browser on a LAN address would drop them and never sign
in. Either way they stay HTTP-only (the session) and SameSite=strict, and signing out
deletes them with the attributes they were set with."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import Morsel, SimpleCookie

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE

PROXY = "127.0.0.1"  # uvicorn's own default for FORWARDED_ALLOW_IPS
STRANGER = "192.0.2.7"
HTTPS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[FastAPI, str]]:
    """The app, and a read token it knows."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    token = TokenStore(engine, utc_now).create(TokenScope.READ, "team1").token
    yield create_app(Settings(database_url=sqlite_url), engine), token
    engine.dispose()


def set_cookies(answer: httpx.Response) -> dict[str, Morsel[str]]:
    jar: SimpleCookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        jar.load(header)
    return dict(jar)


def assert_cookies(answer: httpx.Response, secure: bool) -> None:
    assert answer.status_code == 200, answer.text
    cookies = set_cookies(answer)
    assert set(cookies) == {SESSION_COOKIE, CSRF_COOKIE}
    for name, cookie in cookies.items():
        assert bool(cookie["secure"]) is secure, (name, answer.headers.get_list("set-cookie"))
        assert cookie["samesite"].lower() == "strict"
        # The page reads the CSRF value to echo it; the token itself it never sees.
        assert bool(cookie["httponly"]) is (name == SESSION_COOKIE)


@pytest.mark.parametrize(("scheme", "secure"), [("http", False), ("https", True)])
def test_the_cookies_are_secure_over_https_only_and_sign_out_matches_them(
    served: tuple[FastAPI, str], scheme: str, secure: bool
) -> None:
    app, token = served
    with TestClient(app, base_url=f"{scheme}://testserver") as client:
        assert_cookies(client.post("/api/v1/session", json={"token": token}), secure)
        assert client.get("/api/v1/session").json()["signed_in"] is True
        csrf = {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}
        gone = client.delete("/api/v1/session", headers=csrf)
        assert_cookies(gone, secure)
        assert {cookie["max-age"] for cookie in set_cookies(gone).values()} == {"0"}
        assert client.get("/api/v1/session").json()["signed_in"] is False


@pytest.mark.parametrize(("peer", "secure"), [(PROXY, True), (STRANGER, False)])
def test_x_forwarded_proto_counts_from_a_trusted_proxy_only(
    served: tuple[FastAPI, str], peer: str, secure: bool
) -> None:
    """As `cdrlog serve` runs it: uvicorn's proxy headers middleware in front."""
    app, token = served
    # uvicorn and Starlette each spell the one ASGI interface with types of their own.
    proxied = ProxyHeadersMiddleware(app, trusted_hosts=PROXY)  # type: ignore[arg-type]
    asgi: ASGIApp = proxied  # type: ignore[assignment]
    with TestClient(asgi, base_url="http://testserver", client=(peer, 50000)) as client:
        answer = client.post("/api/v1/session", json={"token": token}, headers=HTTPS)
        assert_cookies(answer, secure)
