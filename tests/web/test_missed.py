"""`GET /api/v1/missed` on each database: its fields, CSV, paging, bad input, and that
a team's read token never sees another team's missed calls or callbacks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.web.app import create_app
from support.missedcalls import WORLD, store
from support.teams import bearer


def missed(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/missed", params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["missed"]
    return rows


def test_fields_in_the_readers_zone(client: TestClient, engine: Engine) -> None:
    store(engine, WORLD)
    rows = missed(client, team="team1", tz="Asia/Shanghai")
    assert [r["diallogid"] for r in rows] == ["a-late", "a-returned", "a-unreached", "a-reached"]
    reached = rows[-1]
    assert reached | {"id": 0} == {
        "id": 0,
        "orgidentity": "team1",
        "diallogid": "a-reached",
        "src": "111",
        "did": None,
        "agent_group": "100",
        "agentno": "1001",
        "starttime": "2026-11-26T17:00:00+08:00",
        "endtime": "2026-11-26T17:00:30+08:00",
        "wait_seconds": 30,
        "callbacks": 1,
        "called_back_at": "2026-11-26T18:00:00+08:00",
        "callback_answered": True,
        "callback_agent": "1002",
        "got_through_at": None,
        "resolved": True,
    }


def test_filters_and_csv(client: TestClient, engine: Engine) -> None:
    store(engine, WORLD)
    unresolved = missed(client, team="team1", unresolved="true")
    assert {r["diallogid"] for r in unresolved} == {"a-unreached", "a-late"}
    longer = missed(client, team="team1", unresolved="true", callback_hours=30)
    assert {r["diallogid"] for r in longer} == {"a-unreached"}
    assert {r["diallogid"] for r in missed(client, agent_group="200")} == {"a-returned"}
    assert "a-misdial" in {r["diallogid"] for r in missed(client, short_abandon_seconds=0)}
    naive = missed(client, team="team1", **{"from": "2026-11-26T10:00", "to": "2026-11-26T13:00"})
    assert {r["diallogid"] for r in naive} == {"a-unreached"}
    response = client.get("/api/v1/missed", params={"team": "team1", "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["diallogid"] for r in table] == ["a-late", "a-returned", "a-unreached", "a-reached"]
    assert (table[-1]["resolved"], table[0]["resolved"]) == ("true", "false")


def test_pages(client: TestClient, engine: Engine) -> None:
    store(engine, WORLD)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = client.get("/api/v1/missed", params=params).json()
        seen += [r["diallogid"] for r in page["missed"]]
        assert page["count"] == len(page["missed"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ["a-late", "a-returned", "z-missed", "a-unreached", "a-reached"]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"callback_hours": "0"},
        {"short_abandon_seconds": "-1"},
        {"from": "not a time"},
        {"tz": "Mars/Olympus"},
        {"limit": "0"},
    ],
)
def test_bad_input_is_a_4xx(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/api/v1/missed", params=params).status_code in (400, 422)


@pytest.fixture
def secured(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tokens = TokenStore(engine, utc_now)
    issued = {
        "team1": tokens.create(TokenScope.READ, "team1").token,
        "team2": tokens.create(TokenScope.READ, "team2").token,
        "admin": tokens.create(TokenScope.ADMIN, None, "tests").token,
    }
    store(engine, WORLD)
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, token_cache_seconds=0)
    with TestClient(create_app(settings, engine)) as client:
        yield client, issued


def test_a_team_token_sees_only_its_teams_calls_and_callbacks(
    secured: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = secured

    def read(who: str, **params: Any) -> list[dict[str, Any]]:
        response = client.get("/api/v1/missed", params=params, headers=bearer(tokens[who]))
        assert response.status_code == 200, response.text
        return list(response.json()["missed"])

    assert client.get("/api/v1/missed").status_code == 401
    team2 = read("team2")
    assert [r["diallogid"] for r in team2] == ["z-missed"]
    assert read("team2", team="team1") == []
    csv_text = client.get(
        "/api/v1/missed", params={"format": "csv", "team": "team1"}, headers=bearer(tokens["team2"])
    ).text
    assert "a-" not in csv_text
    team1 = {r["diallogid"]: r for r in read("team1")}
    assert set(team1) == {"a-late", "a-returned", "a-unreached", "a-reached"}
    # team2 answered a callback to 222 and called 444 back: neither is team1's.
    assert team1["a-unreached"]["callback_answered"] is False
    assert team1["a-unreached"]["callback_agent"] == "1002"
    assert team1["a-late"]["callbacks"] == 0
    assert len(read("admin")) == 5
