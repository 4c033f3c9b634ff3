"""Intake bounds and the open quickstart's defences, in process.

What a real server does with the same abuse (memory, latency of other pushes) is
measured in `tests/system/`.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cdrlog.core.events import MAX_EXTRA_VALUE
from cdrlog.core.tokens import TokenScope, csrf_value
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.spool import Spool
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.tables import call_event, dead_letter
from cdrlog.web.app import create_app
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE

FORM = {"content-type": "application/x-www-form-urlencoded"}
EVENT = {
    "sessionid": "s1",
    "source": "CALLER",
    "event": "incoming",
    "calltype": "dialin",
    "eventTime": "2026-11-26 09:00:00",
    "callerid": "0871",
}
LOCAL = "http://127.0.0.1:8080"


def count(engine: Engine, table: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


@pytest.fixture
def network(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The open service as a browser on this machine reaches it: from 127.0.0.1."""
    app = create_app(settings, engine)
    with TestClient(app, LOCAL, client=("127.0.0.1", 50000)) as client:
        yield client


# --- bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_extra_field_over_its_cap_is_refused_by_name_and_kept(
    client: TestClient, engine: Engine
) -> None:
    fields = EVENT | {"userdata": "x" * (MAX_EXTRA_VALUE + 1)}
    answer = client.post("/astercc/1/events", content=urlencode(fields), headers=FORM)
    assert answer.status_code == 400
    assert "userdata" in answer.json()["errors"]
    assert count(engine, call_event) == 0
    assert count(engine, dead_letter) == 1
    within = EVENT | {"userdata": "x" * MAX_EXTRA_VALUE}
    assert client.post("/astercc/1/events", content=urlencode(within), headers=FORM).is_success


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_invalid_utf8_in_a_form_is_refused_by_name_and_kept(
    client: TestClient, engine: Engine
) -> None:
    body = urlencode(EVENT) + "&callerid=%FF%FE"
    answer = client.post("/astercc/1/events", content=body, headers=FORM)
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"callerid": "is not valid UTF-8"}
    with engine.connect() as connection:
        kept = connection.execute(select(dead_letter.c.body)).scalar_one()
    assert kept == body.encode()
    assert count(engine, call_event) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_huge_batch_is_refused_before_it_is_read_whole(
    client: TestClient, engine: Engine
) -> None:
    body = "[" + ",".join(["{}"] * 200_000) + "]"
    answer = client.post(
        "/astercc/1/events", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert "at most 1000" in answer.json()["error"]
    assert count(engine, call_event) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["form", "multipart"])
def test_a_body_with_too_many_fields_gets_413(client: TestClient, kind: str) -> None:
    if kind == "form":
        answer = client.post(
            "/astercc/1/events", content="&".join(f"f{n}=1" for n in range(5000)), headers=FORM
        )
    else:
        answer = client.post(
            "/astercc/1/events", data={f"f{n}": "1" for n in range(5000)}, files={"x": ("", b"")}
        )
    assert answer.status_code == 413, answer.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_any_other_body_is_bounded_and_never_echoed(client: TestClient) -> None:
    big = b"cdrlog_" + b"a" * 200_000
    answer = client.post("/api/v1/session", content=big, headers={"content-type": "text/plain"})
    assert answer.status_code == 413
    assert b"cdrlog_" not in answer.content

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"a" * 10_000

    assert client.post("/api/v1/session", content=chunks()).status_code == 413
    wrong = client.post("/api/v1/session", json={"token": 12345678, "extra": "cdrlog_secret"})
    assert wrong.status_code == 422
    assert "12345678" not in wrong.text
    assert "cdrlog_secret" not in wrong.text


# --- the open quickstart and browsers -----------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_without_tokens_a_name_other_than_localhost_is_refused(network: TestClient) -> None:
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "192.168.1.20"):
        assert network.get("/api/v1/cdrs", headers={"host": host}).status_code == 200, host
    rebound = network.get("/api/v1/cdrs", headers={"host": "rebind.attacker.example"})
    assert rebound.status_code == 403
    assert "CDRLOG_ALLOWED_HOSTS" in rebound.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_configured_name_is_served(settings: Settings, engine: Engine) -> None:
    named = settings.model_copy(update={"allowed_hosts": ("cdr.example.com",)})
    with TestClient(
        create_app(named, engine), "http://cdr.example.com", client=("127.0.0.1", 1)
    ) as client:
        assert client.get("/api/v1/cdrs").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_without_tokens_a_push_from_another_sites_page_is_refused(
    network: TestClient, engine: Engine
) -> None:
    body = urlencode(EVENT)
    for browser in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site", "origin": "http://other.localhost"},
    ):
        answer = network.post("/astercc/1/events", content=body, headers=FORM | browser)
        assert answer.status_code == 403, browser
    assert count(engine, call_event) == 0
    same_page = FORM | {"origin": LOCAL, "sec-fetch-site": "same-origin"}
    assert network.post("/astercc/1/events", content=body, headers=same_page).is_success
    assert network.post("/astercc/1/events", content=body, headers=FORM).is_success


# --- answers ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_api_answers_are_not_cached(client: TestClient) -> None:
    for path in ("/api/v1/cdrs", "/api/v1/session", "/metrics"):
        assert client.get(path).headers["cache-control"] == "no-store", path
    assert "cache-control" not in client.get("/static/app.js").headers


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_csrf_value_is_bound_to_its_session(settings: Settings, engine: Engine) -> None:
    store = TokenStore(engine, utc_now)
    mine, theirs = (store.create(TokenScope.READ, "1").token for _ in range(2))
    app = create_app(settings, engine)
    with TestClient(app, "https://127.0.0.1", client=("127.0.0.1", 1)) as client:
        signed = client.post("/api/v1/session", json={"token": mine})
        assert signed.cookies[CSRF_COOKIE] == csrf_value(mine)
        client.cookies.set(CSRF_COOKIE, csrf_value(theirs))
        stolen = {"x-csrf-token": csrf_value(theirs)}
        assert client.delete("/api/v1/session", headers=stolen).status_code == 403
        assert client.cookies.get(SESSION_COOKIE) == mine
        own = {"x-csrf-token": csrf_value(mine)}
        assert client.delete("/api/v1/session", headers=own).status_code == 200


def test_a_new_sqlite_database_and_spool_are_private(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    upgrade(engine)
    engine.dispose()
    spool = Spool(tmp_path / "spool")
    spool.append([])
    spool.close()
    spooled = list((tmp_path / "spool").iterdir())
    assert len(spooled) == 1
    for path in [tmp_path / "calls.db", *spooled]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_push_url_with_a_trailing_slash_is_answered_not_redirected(
    client: TestClient, engine: Engine
) -> None:
    answer = client.post(
        "/astercc/1/events/?token=anything",
        content=urlencode(EVENT),
        headers=FORM,
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert client.get("/api/v1/cdrs/?token=x", follow_redirects=False).status_code == 404
