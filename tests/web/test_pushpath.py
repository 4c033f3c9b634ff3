"""pushpath: the Push event URLs, served ahead of the framework, answer as its routes would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.tables import call_event
from cdrlog.web.pushpath import parse_push_url

RINGING = {
    "sessionid": "1709629205.118",
    "calltype": "dialout",
    "source": "CALLEE",
    "event": "ringing",
    "eventTime": "2024-03-05 09:00:05",
    "activenum": "13800138000",
}


def journal_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(call_event)).scalar_one()


@pytest.mark.parametrize(
    ("path", "team"),
    [
        ("/astercc/team1/events", "team1"),
        ("/astercc/events/events", "events"),
        ("/astercc/a/b/events", None),
        ("/astercc//events", None),
        # The same URL: a redirect would repeat its `?token=`.
        ("/astercc/team1/events/", "team1"),
    ],
)
def test_team_urls(path: str, team: str | None) -> None:
    assert parse_push_url(path) == (team is not None, team)


def test_the_generic_url_is_a_push_url_of_no_team() -> None:
    assert parse_push_url("/astercc/events") == (True, None)
    assert parse_push_url("/astercc/events/") == (True, None)


def test_a_team_url_post_is_stored_and_other_methods_reach_the_routes(
    client: TestClient, engine: Engine
) -> None:
    assert client.post("/astercc/team1/events", data=RINGING).json() == {"status": "stored"}
    assert journal_size(engine) == 1
    assert client.get("/astercc/team1/events").status_code == 405
    assert client.post("/astercc/team1/other").status_code == 404


def test_the_generic_url_takes_the_team_from_the_event(client: TestClient, engine: Engine) -> None:
    answer = client.post("/astercc/events", data=RINGING | {"orgidentity": "team2"})
    assert answer.json() == {"status": "stored"}
    with engine.connect() as connection:
        assert connection.execute(select(call_event.c.orgidentity)).scalar_one() == "team2"


def test_security_headers_and_limits_still_apply(client: TestClient) -> None:
    answer = client.post("/astercc/team1/events", data=RINGING)
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def failing_client() -> Iterator[TestClient]:
    """An app whose database is a server nobody answers at: the first thing a push
    needs from it (whether any token exists) fails as an outage does."""
    from cdrlog.web.app import create_app

    nowhere = Settings(database_url="mysql+pymysql://root@127.0.0.1:1/cdrlog")
    with TestClient(create_app(nowhere)) as test_client:
        yield test_client


def test_an_error_gets_the_app_handlers_answer(failing_client: TestClient) -> None:
    answer = failing_client.post("/astercc/team1/events", data=RINGING)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["status"] == "unavailable"


def test_an_auth_refusal_is_a_detail_as_fastapi_gives_it(
    settings: Settings, engine: Engine
) -> None:
    from cdrlog.web.app import create_app

    store = TokenStore(engine, utc_now)
    read = store.create(TokenScope.READ, "team1").token
    with TestClient(create_app(settings, engine)) as test_client:
        anonymous = test_client.post("/astercc/team1/events", data=RINGING)
        reader = test_client.post(
            "/astercc/team1/events", data=RINGING, headers={"Authorization": f"Bearer {read}"}
        )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json() == {"detail": "team 'team1' needs a push token"}
    assert reader.status_code == 403


def test_pushes_and_the_api_share_one_budget_per_address(
    settings: Settings, engine: Engine
) -> None:
    from cdrlog.web.app import create_app

    tight = settings.model_copy(update={"rate_per_second": 0.001, "rate_burst": 2})
    with TestClient(create_app(tight, engine)) as test_client:
        assert test_client.post("/astercc/team1/events", data=RINGING).status_code == 200
        assert test_client.get("/api/v1/cdrs").status_code == 200
        refused = test_client.post("/astercc/team1/events", data=RINGING)
    assert refused.status_code == 429
    assert refused.headers["x-content-type-options"] == "nosniff"
