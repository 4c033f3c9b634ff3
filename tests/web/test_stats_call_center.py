"""`GET /api/v1/stats`'s call-center figures and terms over HTTP: the same recount as
the reader's (`support.callcenter`), and a 4xx naming each bad parameter."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cdrlog.core.hours import BusinessHours
from cdrlog.core.report import GroupBy, StatsTerms
from support.callcenter import ZONES, cdr_rows, recount, same_figures, store


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(cdr_rows(), max_size=30),
    by=st.sampled_from(["queue", "weekday_hour", "agent"]),
    zone=st.sampled_from(ZONES),
)
def test_the_api_gives_the_recount_of_the_cdrs(
    client: TestClient, engine: Engine, rows: list[dict[str, Any]], by: str, zone: str
) -> None:
    store(engine, rows)
    params = {
        "group_by": by,
        "tz": zone,
        "service_level_seconds": "6",
        "short_abandon_seconds": "5",
        "business_hours": "08:00-20:00",
        "business_days": "mon-wed,fri,sat",
    }
    answer = client.get("/api/v1/stats", params=params).json()
    assert (answer["service_level_seconds"], answer["short_abandon_seconds"]) == (6, 5)
    terms = StatsTerms(6, 5, BusinessHours.parse("08:00-20:00", "mon-wed,fri,sat"))
    expected = recount(rows, GroupBy(by), ZoneInfo(zone), terms)
    got = {(row["team"], row["group"]): row for row in answer["rows"]}
    assert set(got) == set(expected)
    for key, figures in expected.items():
        assert same_figures(got[key], figures), (key, got[key], figures)


@pytest.mark.parametrize(
    ("name", "value", "status"),
    [
        ("service_level_seconds", "-1", 422),
        ("service_level_seconds", "twenty", 422),
        ("service_level_seconds", "86401", 422),
        ("short_abandon_seconds", "1.5", 422),
        ("short_abandon_seconds", "9" * 30, 422),
        ("business_hours", "8-20", 400),
        ("business_hours", "20:00-08:00", 400),
        ("business_hours", "08:00-24:01", 400),
        ("business_hours", "08:60-20:00", 400),
        ("business_hours", "x" * 33, 422),
        ("business_days", "mon-fry", 400),
        ("business_days", "", 400),
        ("business_days", "monday", 400),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_bad_term_is_a_4xx_naming_it(
    client: TestClient, name: str, value: str, status: int
) -> None:
    answer = client.get("/api/v1/stats", params={"group_by": "queue", name: value})
    assert answer.status_code == status, answer.text
    assert name in answer.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_terms_have_defaults_and_business_days_alone_take_whole_days(
    client: TestClient,
) -> None:
    answer = client.get("/api/v1/stats", params={"group_by": "weekday_hour"})
    assert answer.status_code == 200
    assert (answer.json()["service_level_seconds"], answer.json()["short_abandon_seconds"]) == (
        20,
        5,
    )
    assert BusinessHours.parse(None, "Sat-Mon") == BusinessHours(days=frozenset({5, 6, 0}))
    assert BusinessHours.parse("00:00-24:00", None) == BusinessHours()
