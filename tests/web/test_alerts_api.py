"""The alerts' API on each backend: rules added, listed and removed by admin tokens only,
each wrong field a 4xx that names it; the alerts raised now and cleared lately, which a
team's read token sees for its own team only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.core.alerts import Decision
from cdrlog.core.tokens import TokenScope
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store import alerts
from cdrlog.web.app import create_app
from support.alerting import AT


@pytest.fixture
def quiet_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The app at AT, its own evaluator too slow to change what a test sets up."""
    fixed = settings.model_copy(update={"alert_check_seconds": 3600, "token_cache_seconds": 0})
    with TestClient(create_app(fixed, engine, clock=lambda: AT)) as client:
        yield client


def added(client: TestClient, **rule: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/alerts/rules", json=rule)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def test_rules_added_listed_and_removed(quiet_client: TestClient) -> None:
    made = added(
        quiet_client,
        team="team1",
        queue="100",
        metric="service_level_below",
        threshold=0.8,
        window_minutes=15,
        note="front desk",
    )
    assert {k: made[k] for k in ("team", "queue", "metric", "threshold", "window_minutes")} == {
        "team": "team1",
        "queue": "100",
        "metric": "service_level_below",
        "threshold": 0.8,
        "window_minutes": 15,
    }
    assert (made["raised"], made["value"], made["service_level_seconds"]) == (False, None, 20)
    silent = added(quiet_client, team="team2", metric="silent_minutes", threshold=10)
    assert silent["window_minutes"] is None  # a figure of now has no window
    listed = quiet_client.get("/api/v1/alerts/rules").json()["rules"]
    assert [r["id"] for r in listed] == [made["id"], silent["id"]]
    assert quiet_client.delete(f"/api/v1/alerts/rules/{made['id']}").status_code == 204
    gone = quiet_client.delete(f"/api/v1/alerts/rules/{made['id']}")
    assert (gone.status_code, gone.json()["detail"]) == (404, "no such alert rule")
    assert [r["id"] for r in quiet_client.get("/api/v1/alerts/rules").json()["rules"]] == [
        silent["id"]
    ]


WRONG = [
    # the body, the status, what the answer names
    ({"metric": "wait_above", "threshold": 60}, 422, "team"),
    ({"team": "", "metric": "wait_above", "threshold": 60}, 422, "team"),
    ({"team": "t" * 65, "metric": "wait_above", "threshold": 60}, 422, "team"),
    ({"team": "team1", "metric": "service_level", "threshold": 0.8}, 422, "metric"),
    ({"team": "team1", "metric": "wait_above"}, 422, "threshold"),
    ({"team": "team1", "metric": "wait_above", "threshold": "soon"}, 422, "threshold"),
    ({"team": "team1", "metric": "service_level_below", "threshold": 80}, 400, "threshold"),
    ({"team": "team1", "metric": "waiting_above", "threshold": 1.5}, 400, "threshold"),
    ({"team": "team1", "metric": "wait_above", "threshold": 1, "queue": ""}, 422, "queue"),
    (
        {"team": "team1", "metric": "abandon_rate_above", "threshold": 0.1, "window_minutes": 0},
        422,
        "window_minutes",
    ),
    (
        {"team": "team1", "metric": "wait_above", "threshold": 9, "note": "n" * 256},
        422,
        "note",
    ),
]


@pytest.mark.parametrize(("body", "status", "named"), WRONG)
def test_a_wrong_rule_is_refused_naming_the_field(
    quiet_client: TestClient, body: dict[str, Any], status: int, named: str
) -> None:
    answer = quiet_client.post("/api/v1/alerts/rules", json=body)
    assert answer.status_code == status, answer.text
    assert named in answer.text
    assert quiet_client.get("/api/v1/alerts/rules").json()["rules"] == []


def test_bad_ids_and_parameters_are_refused(quiet_client: TestClient) -> None:
    assert quiet_client.delete("/api/v1/alerts/rules/0").status_code == 422
    assert quiet_client.delete("/api/v1/alerts/rules/x").status_code == 422
    assert quiet_client.get("/api/v1/alerts", params={"hours": 0}).status_code == 422
    assert quiet_client.get("/api/v1/alerts", params={"hours": 10_000}).status_code == 422


def raise_alert(engine: Engine, rule_id: int, value: float, clear: bool = False) -> None:
    found = next(a for a in alerts.watched(engine) if a.rule.id == rule_id)
    raised = alerts.change(engine, found.rule, found.state, Decision.RAISE, value, AT, False)
    assert raised is not None
    if clear:
        later = AT + timedelta(minutes=5)
        alerts.change(engine, found.rule, raised, Decision.CLEAR, 0.0, later, False)


def test_the_alerts_a_team_sees(quiet_client: TestClient, engine: Engine) -> None:
    one = added(quiet_client, team="team1", metric="waiting_above", threshold=2, queue="100")
    other = added(quiet_client, team="team2", metric="wait_above", threshold=60)
    past = added(quiet_client, team="team1", metric="silent_minutes", threshold=15)
    raise_alert(engine, one["id"], 5.0)
    raise_alert(engine, other["id"], 95.0)
    raise_alert(engine, past["id"], 20.0, clear=True)

    tokens = TokenStore(engine, lambda: AT)
    team1 = tokens.create(TokenScope.READ, "team1").token
    admin = tokens.create(TokenScope.ADMIN, None).token

    def read(token: str, **params: Any) -> dict[str, Any]:
        answer = quiet_client.get(
            "/api/v1/alerts", params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    mine = read(team1, tz="Asia/Shanghai")
    assert [(a["rule"], a["state"], a["value"]) for a in mine["active"]] == [
        (one["id"], "raised", 5.0)
    ]
    assert mine["active"][0]["raised_at"] == "2026-12-04T18:00:00+08:00"
    assert [(a["rule"], a["cleared_at"]) for a in mine["recent"]] == [
        (past["id"], "2026-12-04T18:05:00+08:00")
    ]
    assert read(team1, team="team2", tz="Asia/Shanghai") == {
        "at": mine["at"],
        "active": [],
        "recent": [],
    }
    everyone = read(admin)
    assert {a["rule"] for a in everyone["active"]} == {one["id"], other["id"]}
    assert [a["rule"] for a in read(admin, team="team2")["active"]] == [other["id"]]

    # Rules are an admin's: a team's token neither lists, adds nor removes them.
    headers = {"Authorization": f"Bearer {team1}"}
    assert quiet_client.get("/api/v1/alerts/rules", headers=headers).status_code == 403
    body = {"team": "team1", "metric": "wait_above", "threshold": 1}
    assert quiet_client.post("/api/v1/alerts/rules", json=body, headers=headers).status_code == 403
    assert (
        quiet_client.delete(f"/api/v1/alerts/rules/{one['id']}", headers=headers).status_code == 403
    )
    assert quiet_client.get("/api/v1/alerts").status_code == 401

    # A removed rule's raised alert is cleared, and listed as such.
    admin_headers = {"Authorization": f"Bearer {admin}"}
    removed = quiet_client.delete(f"/api/v1/alerts/rules/{one['id']}", headers=admin_headers)
    assert removed.status_code == 204
    after = read(team1)
    assert after["active"] == []
    # Both raised at AT: the newer rule first.
    assert [(a["rule"], a["rule_removed"]) for a in after["recent"]] == [
        (past["id"], False),
        (one["id"], True),
    ]
