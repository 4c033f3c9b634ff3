"""Pushing generated calls through the API and walking its pages."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from cdrlog.sim.traffic import GeneratedCall

# Straddles Europe/Berlin's change to summer time (2026-03-29 01:00 UTC).
START = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)


def push(client: TestClient, calls: list[GeneratedCall]) -> None:
    """All events, the agents' that ride with the calls included, as JSON batches to
    each team's push URL (the reading tests need data, not the push path)."""
    by_team: defaultdict[str, list[dict[str, str]]] = defaultdict(list)
    for call in calls:
        by_team[call.team] += [*call.events, *call.agent_events]
    for team, events in sorted(by_team.items()):
        for first in range(0, len(events), 250):
            batch = events[first : first + 250]
            response = client.post(f"/astercc/{team}/events", json=batch)
            assert response.status_code == 200, response.text


def walk(client: TestClient, **params: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/cdrs", params=query).json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return
