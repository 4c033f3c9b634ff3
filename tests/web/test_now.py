"""GET /api/v1/now on every backend: calls waiting, agents by state and today's figures,
per queue, for whom may see them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from cdrlog.core.tokens import TokenScope
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.tables import cdr
from cdrlog.web.app import create_app
from support.missedcalls import row

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # support.missedcalls' hour 0
YESTERDAY = -24.0


def hours(at: datetime) -> float:
    return (at - T0).total_seconds() / 3600


ROWS = [
    # team1, queue 100: two waiting (80 s and 20 s), answered within 20 s, one after 40 s,
    # an abandon after 30 s, a short abandon (3 s), and a call of yesterday.
    row("w1", "dialin", at=hours(NOW) - 80 / 3600, status="open", src="1"),
    row("w2", "dialin", at=hours(NOW) - 20 / 3600, status="open", src="2"),
    row("a1", "dialin", at=0.1, waited=10, answered=True, agentno="1001"),
    row("a2", "dialin", at=0.2, waited=40, answered=True, agentno="1001"),
    row("x1", "dialin", at=0.3, waited=30),
    row("s1", "dialin", at=0.4, waited=3),
    row("old", "dialin", at=YESTERDAY, waited=300),
    # team1, queue 200: one answered; an outbound call is no queue figure
    row("b1", "dialin", at=0.5, waited=5, answered=True, queue="200"),
    row("o1", "dialout", at=0.6, waited=5, answered=True, queue="200", dst="555"),
    # team2 waits too
    row("t2", "dialin", team="team2", at=hours(NOW) - 600 / 3600, status="open", queue="900"),
]
AGENTS: list[dict[str, str]] = [
    {
        "orgidentity": "team1",
        "event": "login",
        "agentno": "1001",
        "agentphone": "8001",
        "AgentGroupId": "100",
        "eventTime": "2026-11-26 08:00:00",
    },
    {
        "orgidentity": "team1",
        "event": "paused",
        "agentno": "1002",
        "agentphone": "8002",
        "AgentGroupId": "200",
        "eventTime": "2026-11-26 08:30:00",
    },
    {
        "orgidentity": "team2",
        "event": "login",
        "agentno": "2001",
        "agentphone": "9001",
        "AgentGroupId": "900",
        "eventTime": "2026-11-26 08:00:00",
    },
]


@pytest.fixture
def floor_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    fixed = Settings(database_url=settings.database_url, token_cache_seconds=0)
    with engine.begin() as connection:
        connection.execute(insert(cdr), ROWS)
    with TestClient(create_app(fixed, engine, clock=lambda: NOW)) as client:
        assert client.post("/astercc/events", json=AGENTS).status_code == 200
        yield client


def now(client: TestClient, token: str | None = None, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get("/api/v1/now", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_the_floor_of_one_team(floor_client: TestClient) -> None:
    found = now(floor_client, team="team1")
    assert found["at"] == "2026-11-26T10:00:00+00:00"
    assert (found["waiting"], found["longest_wait"]) == (2, 80)
    assert found["agents"] == {
        "available": 1,
        "on_call": 0,
        "paused": 1,
        "after_call_work": 0,
        "logged_out": 0,
    }
    today = found["today"]
    # offered: a1, a2, x1, s1, b1 (waiting and yesterday's calls are not); s1 is short
    assert (today["offered"], today["short_abandoned"], today["abandoned"]) == (5, 1, 1)
    assert today["answered_within"] == 2
    assert today["service_level"] == pytest.approx(2 / 4)
    assert today["abandon_rate"] == pytest.approx(1 / 4)
    queues = {q["queue"]: q for q in found["queues"]}
    assert set(queues) == {"100", "200"}
    assert (queues["100"]["waiting"], queues["100"]["longest_wait"]) == (2, 80)
    assert queues["100"]["agents"]["available"] == 1
    assert queues["100"]["today"]["offered"] == 4
    assert queues["200"]["today"]["service_level"] == 1.0
    assert queues["200"]["agents"]["paused"] == 1


def test_the_wallboard_chooses_its_queues(floor_client: TestClient) -> None:
    found = now(floor_client, team="team1", queue=["200"])
    assert [q["queue"] for q in found["queues"]] == ["200"]
    assert found["waiting"] == 0
    assert found["today"]["offered"] == 1
    assert found["agents"]["paused"] == 1
    assert found["agents"]["available"] == 0


def test_the_thresholds_are_parameters(floor_client: TestClient) -> None:
    found = now(floor_client, team="team1", service_level_seconds=60, short_abandon_seconds=1)
    assert found["service_level_seconds"] == 60
    assert found["today"]["short_abandoned"] == 0
    assert found["today"]["answered_within"] == 3
    assert found["today"]["service_level"] == pytest.approx(3 / 5)


def test_a_team_token_sees_its_team_only(floor_client: TestClient, engine: Engine) -> None:
    tokens = TokenStore(engine, lambda: NOW)
    team2 = tokens.create(TokenScope.READ, "team2").token
    admin = tokens.create(TokenScope.ADMIN, None).token
    mine = now(floor_client, team2)
    assert [q["orgidentity"] for q in mine["queues"]] == ["team2"]
    assert (mine["waiting"], mine["longest_wait"]) == (1, 600)
    asked = now(floor_client, team2, team="team1")
    assert asked["queues"] == []
    assert asked["waiting"] == 0
    everyone = now(floor_client, admin)
    assert everyone["waiting"] == 3
    assert everyone["longest_wait"] == 600
    assert floor_client.get("/api/v1/now").status_code == 401
