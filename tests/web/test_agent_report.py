"""GET /api/v1/agents/report: each agent's time in states and calls over a range, on
every backend, seen only by whom may.

The app's clock stands at NOW (10:00 UTC); the events are pushed newest first and some
twice, so the figures must not depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.core.tokens import TokenScope
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.web.app import create_app

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
DAY = "2026-12-03"
Fields = dict[str, str]


def agent_event(team: str, agentno: str, event: str, clock: str, **extra: str) -> Fields:
    return {
        "orgidentity": team,
        "event": event,
        "agentno": agentno,
        "eventTime": f"{DAY} {clock}" if len(clock) <= 8 else clock,
        **extra,
    }


def outbound(
    sessionid: str, agentno: str, ringing: str, answer: str | None, hangup: str
) -> list[Fields]:
    common = {
        "orgidentity": "team1",
        "sessionid": sessionid,
        "calltype": "dialout",
        "source": "CALLEE",
        "agentno": agentno,
    }
    events = [common | {"event": "ringing", "eventTime": ringing, "activenum": "555"}]
    if answer is not None:
        events.append(common | {"event": "answer", "eventTime": answer})
    events.append(common | {"event": "hangup", "eventTime": hangup, "hangupcause": "16"})
    return events


EVENTS: list[Fields] = [
    # 1001 (queue 100): logged in before the range, paused, wrap-up, logged off.
    agent_event("team1", "1001", "login", "07:30:00", agentphone="8001", AgentGroupId="100"),
    agent_event("team1", "1001", "paused", "08:30:00"),
    agent_event("team1", "1001", "acwring", "08:35:00"),
    agent_event("team1", "1001", "nopaused", "08:45:00"),
    agent_event("team1", "1001", "hangupacw", "09:00:00"),
    agent_event("team1", "1001", "acwstop", "09:10:00"),
    agent_event("team1", "1001", "logoff", "09:30:00"),
    # answered, 540 s of talk; unanswered; and one the day before
    *outbound("c1", "1001", f"{DAY} 08:50:00", f"{DAY} 08:50:10", f"{DAY} 08:59:10"),
    *outbound("c2", "1001", f"{DAY} 09:15:00", None, f"{DAY} 09:15:30"),
    *outbound("c0", "1001", "2026-12-02 23:00:00", "2026-12-02 23:00:05", "2026-12-02 23:01:05"),
    # 1002 (queue 200): logged in and still working.
    agent_event("team1", "1002", "login", "09:00:00", agentphone="8002", AgentGroupId="200"),
    # team2's agent
    agent_event("team2", "2001", "login", "08:00:00", agentphone="9001", AgentGroupId="300"),
]
RANGE = {"from": f"{DAY}T08:00:00Z", "to": f"{DAY}T09:45:00Z"}


@pytest.fixture
def report_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    fixed = Settings(database_url=settings.database_url, token_cache_seconds=0)
    with TestClient(create_app(fixed, engine, clock=lambda: NOW)) as client:
        pushed = [*reversed(EVENTS), *EVENTS[::3]]
        answer = client.post("/astercc/events", json=pushed)
        assert answer.status_code == 200, answer.text
        yield client


def report(client: TestClient, token: str | None = None, **params: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get("/api/v1/agents/report", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def by_agent(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["agentno"]: a for a in found["agents"]}


def test_each_agents_figures_over_the_range(report_client: TestClient) -> None:
    found = report(report_client, team="team1", **RANGE)

    assert found["start_from"] == "2026-12-03T08:00:00+00:00"
    assert found["start_to"] == "2026-12-03T09:45:00+00:00"
    assert found["agents"] == [
        {
            "orgidentity": "team1",
            "agentno": "1001",
            "agent_group": "100",
            "logged_in_seconds": 90 * 60,
            "paused_seconds": 15 * 60,
            "after_call_work_seconds": 10 * 60,
            "talk_seconds": 540,
            "answered_calls": 1,
            "occupancy": pytest.approx((540 + 600) / (5400 - 900)),
            "aht": pytest.approx(540 + 600),
        },
        {
            "orgidentity": "team1",
            "agentno": "1002",
            "agent_group": "200",
            "logged_in_seconds": 45 * 60,
            "paused_seconds": 0,
            "after_call_work_seconds": 0,
            "talk_seconds": 0,
            "answered_calls": 0,
            "occupancy": 0.0,
            "aht": None,
        },
    ]


def test_a_state_still_going_on_counts_up_to_now(report_client: TestClient) -> None:
    found = by_agent(report(report_client, team="team1", to=f"{DAY}T12:00:00Z"))

    # From today's midnight (the default start) to NOW, not to the asked end.
    assert found["1002"]["logged_in_seconds"] == 60 * 60
    assert found["1001"]["logged_in_seconds"] == 120 * 60


def test_the_default_range_is_today_in_the_zone_asked(report_client: TestClient) -> None:
    utc = report(report_client, team="team1")
    assert (utc["start_from"], utc["start_to"]) == (
        f"{DAY}T00:00:00+00:00",
        "2026-12-04T00:00:00+00:00",
    )
    assert by_agent(utc)["1001"]["talk_seconds"] == 540

    # 18:00 in Shanghai: its day began at 16:00 UTC the day before, with the 23:00 call.
    shanghai = report(report_client, team="team1", tz="Asia/Shanghai")
    assert shanghai["start_from"] == f"{DAY}T00:00:00+08:00"
    assert by_agent(shanghai)["1001"]["talk_seconds"] == 540 + 60
    assert by_agent(shanghai)["1001"]["answered_calls"] == 2


def test_naive_times_are_read_in_the_zone_asked(report_client: TestClient) -> None:
    found = report(
        report_client,
        team="team1",
        tz="Asia/Shanghai",
        **{"from": f"{DAY}T16:00:00", "to": f"{DAY}T17:45:00"},
    )

    assert by_agent(found)["1001"]["logged_in_seconds"] == 90 * 60


def test_a_queue_keeps_its_agents(report_client: TestClient) -> None:
    assert [a["agentno"] for a in report(report_client, queue="200", **RANGE)["agents"]] == ["1002"]
    assert report(report_client, agent_group="100", **RANGE)["agents"][0]["agentno"] == "1001"
    assert report(report_client, queue="999", **RANGE)["agents"] == []


def test_every_team_sorted_by_team_then_agent(report_client: TestClient) -> None:
    found = report(report_client, **RANGE)["agents"]

    assert [(a["orgidentity"], a["agentno"]) for a in found] == [
        ("team1", "1001"),
        ("team1", "1002"),
        ("team2", "2001"),
    ]
    assert found[2]["logged_in_seconds"] == 105 * 60


def test_a_team_scoped_token_sees_only_its_team(report_client: TestClient, engine: Engine) -> None:
    store = TokenStore(engine, lambda: NOW)
    team2 = store.create(TokenScope.READ, "team2").token
    admin = store.create(TokenScope.ADMIN, None).token
    pusher = store.create(TokenScope.PUSH, "team2").token

    assert [a["agentno"] for a in report(report_client, team2, **RANGE)["agents"]] == ["2001"]
    assert report(report_client, team2, team="team1", **RANGE)["agents"] == []
    assert report(report_client, team2, orgidentity="team1", **RANGE)["agents"] == []
    assert len(report(report_client, admin, **RANGE)["agents"]) == 3
    assert len(report(report_client, admin, team="team1", **RANGE)["agents"]) == 2
    assert report_client.get("/api/v1/agents/report").status_code == 401
    denied = report_client.get(
        "/api/v1/agents/report", headers={"Authorization": f"Bearer {pusher}"}
    )
    assert denied.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"from": f"{DAY}T10:00:00Z", "to": f"{DAY}T09:00:00Z"},
        {"from": "2025-01-01T00:00:00Z", "to": f"{DAY}T00:00:00Z"},
        {"from": "not a time"},
        {"tz": "Mars/Olympus"},
        {"team": "team1", "orgidentity": "team2"},
        {"queue": "100", "agent_group": "200"},
    ],
)
def test_a_range_or_parameter_that_cannot_be_is_refused(
    report_client: TestClient, params: dict[str, str]
) -> None:
    answer = report_client.get("/api/v1/agents/report", params=params)

    assert answer.status_code in (400, 422), answer.text


def test_the_report_is_in_the_api_description_beside_the_agents(
    report_client: TestClient,
) -> None:
    described = report_client.get("/openapi.json").json()
    path = described["paths"]["/api/v1/agents/report"]["get"]
    assert "occupancy" in path["description"]
    assert "/api/v1/agents" in described["paths"]
    # The list of agents is still the list, not shadowed by the report or vice versa.
    assert "agents" in report_client.get("/api/v1/agents").json()
