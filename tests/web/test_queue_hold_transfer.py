"""The queue, DID, hold and transfer of a call, as every reader gets them: the CDR list,
one CDR, CSV and JSON lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.service.settings import Settings
from cdrlog.web.app import create_app
from support.contract import CONTRACT_COLUMNS

Fields = dict[str, str]


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The service on the morning of the calls: an open call is not yet too old."""
    morning = datetime(2026, 12, 3, 10, tzinfo=UTC)
    with TestClient(create_app(settings, engine, clock=lambda: morning)) as client:
        yield client


def leg(source: str, event: str, at: str, **extra: str) -> Fields:
    common = {"orgidentity": "team1", "sessionid": "in-1", "calltype": "dialin"}
    return common | {"source": source, "event": event, "eventTime": f"2026-12-03 {at}", **extra}


AGENT_LEG = {"agentno": "1001", "uniqueid": "u-agent", "AgentGroupId": "100"}
CONSULTED = {"activenum": "8002", "uniqueid": "u-consult"}
# A customer dials DID 8008008; agent 1001 of queue 100 answers, holds the customer for
# 30 s, consults 8002, who joins; the agent leaves, and the customer hangs up later.
CALL = [
    leg("CALLER", "incoming", "10:00:00", activenum="13800138000", didnumber="8008008"),
    leg("AGENT", "ringing", "10:00:02", activenum="8001", **AGENT_LEG),
    leg("AGENT", "answer", "10:00:05", **AGENT_LEG),
    leg("AGENT", "onhold", "10:01:00", **AGENT_LEG),
    leg("AGENT", "resume", "10:01:30", **AGENT_LEG),
    leg("CONSULT", "ringing", "10:02:00", **CONSULTED),
    leg("CONSULT", "join", "10:02:10", **CONSULTED),
    leg("AGENT", "hangup", "10:02:20", **AGENT_LEG),
    leg("CALLER", "hangup", "10:05:05"),
]
EXPECTED = {
    "did": "8008008",
    "agent_group": "100",
    "hold_seconds": 30,
    "transferred_to": "8002",
    "agentno": "1001",
    "billsec": 300,
}


@pytest.fixture
def called(client: TestClient) -> TestClient:
    answer = client.post("/astercc/events", json=CALL)
    assert answer.status_code == 200, answer.text
    return client


def picked(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in EXPECTED}


def test_the_list_and_the_detail_show_queue_did_hold_and_transfer(called: TestClient) -> None:
    [row] = called.get("/api/v1/cdrs").json()["cdrs"]
    detail = called.get(f"/api/v1/cdrs/{row['id']}").json()

    assert picked(row) == EXPECTED
    assert picked(detail) == EXPECTED
    assert [e["source"] for e in detail["events"]] == [e["source"] for e in CALL]
    assert {e["agent_group"] for e in detail["events"] if e["source"] == "AGENT"} == {"100"}


def test_csv_has_the_new_columns_in_the_contract_order(called: TestClient) -> None:
    answer = called.get("/api/v1/cdrs", params={"format": "csv"})
    header, row = list(csv.reader(io.StringIO(answer.text)))

    assert header == CONTRACT_COLUMNS
    shown = dict(zip(header, row, strict=True))
    assert picked(shown) == {name: str(value) for name, value in EXPECTED.items()}


def test_json_lines_have_the_new_columns_typed(called: TestClient) -> None:
    answer = called.get("/api/v1/cdrs", params={"format": "jsonl"})
    [line] = answer.text.splitlines()
    row = json.loads(line)

    assert list(row) == CONTRACT_COLUMNS
    assert picked(row) == EXPECTED


def test_an_open_call_has_no_hold_seconds_yet(client: TestClient) -> None:
    assert client.post("/astercc/events", json=CALL[:5]).status_code == 200

    [row] = client.get("/api/v1/cdrs").json()["cdrs"]

    assert (row["status"], row["hold_seconds"], row["transferred_to"]) == ("open", None, None)
