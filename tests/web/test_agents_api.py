"""GET /api/v1/agents: each agent's state now, on every backend, seen only by whom may.

Times here are fixed: the app's clock stands at NOW, a few minutes after the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.core.tokens import TokenScope
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.web.app import create_app

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
Fields = dict[str, str]


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")


def agent_event(team: str, agentno: str, event: str, minutes_ago: float, **extra: str) -> Fields:
    return {
        "orgidentity": team,
        "event": event,
        "agentno": agentno,
        "eventTime": at(minutes_ago),
        **extra,
    }


def open_call(team: str, sessionid: str, agentno: str, answered_minutes_ago: float) -> list[Fields]:
    """An outbound call of `agentno` that the customer answered and nobody hung up yet."""
    common = {
        "orgidentity": team,
        "sessionid": sessionid,
        "calltype": "dialout",
        "source": "CALLEE",
        "agentno": agentno,
    }
    return [
        common
        | {"event": "ringing", "eventTime": at(answered_minutes_ago + 0.5), "activenum": "555"},
        common | {"event": "answer", "eventTime": at(answered_minutes_ago)},
    ]


# One agent in each state, in team1; one agent in team2.
EVENTS: list[Fields] = [
    agent_event("team1", "1001", "login", 60, agentphone="8001", AgentGroupId="100"),
    agent_event("team1", "1002", "login", 50, agentphone="8002", AgentGroupId="100"),
    agent_event("team1", "1002", "paused", 20),
    agent_event("team1", "1003", "login", 40, agentphone="8003", AgentGroupId="200"),
    agent_event("team1", "1003", "hangupacw", 3),
    agent_event("team1", "1004", "login", 40, agentphone="8004"),
    agent_event("team1", "1004", "logoff", 10),
    agent_event("team1", "1005", "login", 30, agentphone="8005", AgentGroupId="100"),
    *open_call("team1", "call-1005", "1005", 4),
    agent_event("team2", "2001", "login", 5, agentphone="9001", AgentGroupId="300"),
]
# agentno -> (state, state_since as shown in UTC)
TEAM1 = {
    "1001": ("available", "2026-12-03T09:00:00+00:00"),
    "1002": ("paused", "2026-12-03T09:40:00+00:00"),
    "1003": ("after_call_work", "2026-12-03T09:57:00+00:00"),
    "1004": ("logged_out", "2026-12-03T09:50:00+00:00"),
    "1005": ("on_call", "2026-12-03T09:56:00+00:00"),
}


@pytest.fixture
def agents_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    # No token cache: tokens made after the first request count at once.
    fixed = Settings(database_url=settings.database_url, token_cache_seconds=0)
    with TestClient(create_app(fixed, engine, clock=lambda: NOW)) as client:
        answer = client.post("/astercc/events", json=EVENTS)
        assert answer.status_code == 200, answer.text
        yield client


def agents(client: TestClient, token: str | None = None, **params: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get("/api/v1/agents", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["agents"]
    return found


def test_each_agent_with_its_state_and_since(agents_client: TestClient) -> None:
    found = agents(agents_client, orgidentity="team1")

    assert {a["agentno"]: (a["state"], a["state_since"]) for a in found} == TEAM1
    first = found[0]
    assert first == {
        "orgidentity": "team1",
        "agentno": "1001",
        "phone": "8001",
        "agent_group": "100",
        "state": "available",
        "state_since": "2026-12-03T09:00:00+00:00",
    }


def test_every_team_sorted_by_team_then_agent(agents_client: TestClient) -> None:
    found = agents(agents_client)

    assert [(a["orgidentity"], a["agentno"]) for a in found] == [
        *(("team1", agentno) for agentno in sorted(TEAM1)),
        ("team2", "2001"),
    ]


def test_team_is_the_same_as_orgidentity(agents_client: TestClient) -> None:
    assert agents(agents_client, team="team2") == agents(agents_client, orgidentity="team2")
    answer = agents_client.get("/api/v1/agents", params={"team": "team1", "orgidentity": "x"})
    assert answer.status_code == 400


def test_an_unknown_team_has_no_agents(agents_client: TestClient) -> None:
    assert agents(agents_client, orgidentity="team9") == []


def test_state_since_is_shown_in_the_zone_asked(agents_client: TestClient) -> None:
    [agent] = agents(agents_client, orgidentity="team2", tz="Asia/Shanghai")

    assert agent["state_since"] == "2026-12-03T17:55:00+08:00"


def test_a_read_token_sees_only_its_team(agents_client: TestClient, engine: Engine) -> None:
    store = TokenStore(engine, lambda: NOW)
    team2 = store.create(TokenScope.READ, "team2").token
    admin = store.create(TokenScope.ADMIN, None).token
    pusher = store.create(TokenScope.PUSH, "team2").token

    assert [a["agentno"] for a in agents(agents_client, team2)] == ["2001"]
    assert agents(agents_client, team2, orgidentity="team1") == []
    assert [a["agentno"] for a in agents(agents_client, team2, team="team2")] == ["2001"]
    assert len(agents(agents_client, admin)) == len(TEAM1) + 1
    assert len(agents(agents_client, admin, orgidentity="team1")) == len(TEAM1)
    assert agents_client.get("/api/v1/agents").status_code == 401
    denied = agents_client.get("/api/v1/agents", headers={"Authorization": f"Bearer {pusher}"})
    assert denied.status_code == 403


def test_the_agents_list_is_in_the_api_description(agents_client: TestClient) -> None:
    described = agents_client.get("/openapi.json").json()
    assert "/api/v1/agents" in described["paths"]
    state = described["components"]["schemas"]["AgentOut"]["properties"]["state"]
    assert set(state["enum"]) == {s for s, _ in TEAM1.values()}
