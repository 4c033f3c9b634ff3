"""Operators' views that change things: dead-letter retries, live calls, paging under load."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.service.ingest import Ingestor
from cdrlog.sim.traffic import generate_calls
from cdrlog.store.deadletters import DeadLetter
from support.listing import START, push, walk


def test_calls_arriving_between_pages_neither_shift_nor_repeat_rows(client: TestClient) -> None:
    calls = generate_calls(random.Random(5), START, calls=40, teams=2, mean_gap_seconds=400)
    push(client, calls)
    first = client.get("/api/v1/cdrs", params={"limit": 10}).json()
    # New calls, some newer than every listed one and some older, land mid-walk.
    later = generate_calls(random.Random(6), START - timedelta(hours=5), calls=20, teams=2)
    push(client, later)
    rest = list(walk(client, limit=10, cursor=first["next_cursor"]))
    seen = [r["diallogid"] for r in first["cdrs"]] + [
        r["diallogid"] for page in rest for r in page["cdrs"]
    ]
    assert sorted(seen) == sorted(c.expected.diallogid for c in calls)
    assert client.get("/api/v1/cdrs").json()["total"] == len(calls) + len(later)


def test_a_dead_letter_is_listed_and_retried_after_a_fix(
    client: TestClient, engine: Engine
) -> None:
    bad = {"sessionid": "late-fix", "calltype": "dialout", "source": "CALLEE", "event": "ringing"}
    refused = client.post("/astercc/team1/events", data=bad | {"eventTime": "soon"})
    letter_id = refused.json()["dead_letter_id"]
    listed = client.get("/api/v1/rejected").json()["rejected"]
    assert [r["id"] for r in listed] == [letter_id]
    assert "eventTime" in listed[0]["reason"]

    still_bad = client.post(f"/api/v1/rejected/{letter_id}/retry").json()
    assert still_bad["status"] == "rejected"

    # As an older release would have refused a body this one accepts:
    good = bad | {"eventTime": "2026-03-28 20:00:00", "activenum": "13800138000"}
    body = "&".join(f"{k}={v}" for k, v in good.items()).encode()
    kept = DeadLetter("/astercc/team1/events", "team1", None, None, body, False, {"x": "y"})
    fixed_id = Ingestor(engine).dead_letter(kept)
    retried = client.post(f"/api/v1/rejected/{fixed_id}/retry").json()
    assert (retried["status"], retried["stored"]) == ("resolved", 1)
    assert client.get("/api/v1/cdrs", params={"team": "team1"}).json()["total"] == 1
    again = client.post(f"/api/v1/rejected/{fixed_id}/retry")
    assert again.status_code == 409
    unresolved = client.get("/api/v1/rejected", params={"unresolved": True}).json()["rejected"]
    assert [r["id"] for r in unresolved] == [letter_id]
    assert client.post("/api/v1/rejected/424242/retry").status_code == 404


def test_a_truncated_dead_letter_cannot_be_retried(client: TestClient, engine: Engine) -> None:
    kept = DeadLetter("/astercc/t/events", "t", None, None, b"sessionid=x", True, {"body": "big"})
    letter_id = Ingestor(engine).dead_letter(kept)
    assert client.post(f"/api/v1/rejected/{letter_id}/retry").status_code == 409


def test_calls_in_progress_are_open_until_a_hangup_or_the_timeout(
    client: TestClient, engine: Engine
) -> None:
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    ringing = {
        "sessionid": "live-1",
        "calltype": "dialin",
        "source": "CALLER",
        "event": "ringing",
        "activenum": "13800138000",
        "eventTime": started.strftime("%Y-%m-%d %H:%M:%S"),
    }
    assert client.post("/astercc/team1/events", data=ringing).status_code == 200
    open_now = client.get("/api/v1/cdrs", params={"status": "open"}).json()["cdrs"]
    assert [r["diallogid"] for r in open_now] == ["live-1"]
    assert open_now[0]["duration"] is None

    # Five hours on and still no hangup: the periodic check closes it as a timeout.
    later = Ingestor(engine, clock=lambda: started + timedelta(hours=5))
    assert later.close_stale() == 1
    [timed_out] = client.get("/api/v1/cdrs", params={"status": "timeout"}).json()["cdrs"]
    assert timed_out["endtime"] == timed_out["starttime"]
    assert (timed_out["duration"], timed_out["billsec"]) == (0, 0)
    assert later.close_stale() == 0

    # The hangup comes after all: the call closes properly.
    hangup = ringing | {
        "event": "hangup",
        "eventTime": (started + timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    assert client.post("/astercc/team1/events", data=hangup).status_code == 200
    [closed] = client.get("/api/v1/cdrs", params={"status": "closed"}).json()["cdrs"]
    assert (closed["diallogid"], closed["duration"]) == ("live-1", 30)
