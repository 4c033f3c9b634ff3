"""GET /api/v1/cdrs: filters, times with their offset, the display zone, CSV export."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog.service.settings import Settings
from cdrlog.web.app import create_app
from support.contract import CONTRACT_COLUMNS


def outbound(
    team: str, sessionid: str, agentno: str, start: str, answered: bool, end: str, cause: str = ""
) -> list[dict[str, str]]:
    common = {
        "orgidentity": team,
        "sessionid": sessionid,
        "calltype": "dialout",
        "agentno": agentno,
        "agentphone": "8" + agentno[1:],
    }
    events = [
        common | {"source": "CALLEE", "event": "ringing", "eventTime": start, "activenum": "555"},
        common | {"source": "CALLEE", "event": "hangup", "eventTime": end, "hangupcause": cause},
    ]
    if answered:
        events.append(
            common | {"source": "CALLEE", "event": "answer", "eventTime": start[:-1] + "9"}
        )
    return events


def inbound(team: str, sessionid: str, agentno: str, start: str, end: str) -> list[dict[str, str]]:
    common = {"orgidentity": team, "sessionid": sessionid, "calltype": "dialin"}
    callee = common | {"source": "CALLEE", "agentno": agentno}
    return [
        common | {"source": "CALLER", "event": "ringing", "eventTime": start, "activenum": "777"},
        callee | {"event": "ringing", "eventTime": start[:-1] + "2", "activenum": "8001"},
        callee | {"event": "answer", "eventTime": start[:-1] + "5"},
        common | {"source": "CALLER", "event": "hangup", "eventTime": end},
    ]


# The calls every test reads, by diallogid. Event times are UTC (the default PBX zone).
CALLS = [
    *outbound("team1", "c1", "1001", "2024-03-05 09:00:05", True, "2024-03-05 09:01:40"),
    *outbound("team1", "c2", "1002", "2024-03-05 10:00:00", False, "2024-03-05 10:00:30", "17"),
    *inbound("team1", "c3", "1001", "2024-03-06 08:00:00", "2024-03-06 08:05:00"),
    *outbound("team2", "c4", "1001", "2024-03-04 23:30:00", False, "2024-03-04 23:30:20"),
]


@pytest.fixture
def stored(client: TestClient) -> TestClient:
    response = client.post("/astercc/events", json=CALLS)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == len(CALLS)
    return client


@pytest.fixture
def shanghai(settings: Settings, engine: Engine, stored: TestClient) -> Iterator[TestClient]:
    shown_in = Settings(database_url=settings.database_url, display_timezone="Asia/Shanghai")
    with TestClient(create_app(shown_in, engine)) as client:
        yield client


def listed(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/cdrs", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["count"] == len(page["cdrs"])
    cdrs: list[dict[str, Any]] = page["cdrs"]
    return cdrs


def ids(client: TestClient, **params: str) -> list[str]:
    return [row["diallogid"] for row in listed(client, **params)]


# Filter -> the diallogids it selects, newest first.
FILTERS: list[tuple[dict[str, str], list[str]]] = [
    ({}, ["c3", "c2", "c1", "c4"]),
    ({"orgidentity": "team1"}, ["c3", "c2", "c1"]),
    ({"orgidentity": "team3"}, []),
    ({"agentno": "1001"}, ["c3", "c1", "c4"]),
    ({"disposition": "ANSWER"}, ["c3", "c1"]),
    ({"disposition": "busy"}, ["c2"]),
    ({"disposition": "NOANSWER"}, ["c4"]),
    ({"calltype": "dialin"}, ["c3"]),
    ({"calltype": "dialout"}, ["c2", "c1", "c4"]),
    ({"from": "2024-03-05T00:00:00Z"}, ["c3", "c2", "c1"]),
    ({"from": "2024-03-05T09:00:05+00:00"}, ["c3", "c2", "c1"]),
    ({"from": "2024-03-05T17:00:06+08:00"}, ["c3", "c2"]),
    ({"to": "2024-03-05T10:00:00+00:00"}, ["c1", "c4"]),
    ({"to": "2024-03-04T22:00:00-02:00"}, ["c4"]),
    ({"from": "2024-03-05T00:00:00Z", "to": "2024-03-06T00:00:00Z"}, ["c2", "c1"]),
    ({"from": "2024-03-05T00:00:00", "to": "2024-03-06T00:00:00"}, ["c2", "c1"]),
    ({"limit": "2"}, ["c3", "c2"]),
    ({"limit": "1", "orgidentity": "team2"}, ["c4"]),
    ({"orgidentity": "team1", "agentno": "1001", "calltype": "dialout"}, ["c1"]),
]


def test_filters(stored: TestClient) -> None:
    # One table, one data set: every row's actual answer is shown when any differs.
    actual = [(params, ids(stored, **params)) for params, _ in FILTERS]

    assert actual == FILTERS


def test_a_cdr_as_the_api_shows_it(stored: TestClient) -> None:
    [row] = listed(stored, orgidentity="team1", agentno="1001", calltype="dialout")

    assert isinstance(row.pop("id"), int)
    created, updated = row.pop("created_at"), row.pop("updated_at")
    assert row.pop("version") >= 1  # one more per change; how many the events made
    assert row == {
        "orgidentity": "team1",
        "diallogid": "c1",
        "calltype": "dialout",
        "target": "DialOut",
        "src": "8001",
        "dst": "555",
        "agentno": "1001",
        "starttime": "2024-03-05T09:00:05+00:00",
        "answertime": "2024-03-05T09:00:09+00:00",
        "endtime": "2024-03-05T09:01:40+00:00",
        "duration": 95,
        "billsec": 91,
        "disposition": "ANSWER",
        "status": "closed",
        "did": None,
        "agent_group": None,
        "hold_seconds": 0,
        "transferred_to": None,
    }
    assert datetime.fromisoformat(created).utcoffset() is not None
    assert datetime.fromisoformat(updated).utcoffset() is not None


def test_every_time_carries_its_offset(stored: TestClient) -> None:
    for row in listed(stored):
        for name in ("starttime", "answertime", "endtime", "created_at", "updated_at"):
            if row[name] is not None:
                assert datetime.fromisoformat(row[name]).utcoffset() is not None, (name, row)


def test_display_zone_is_applied(shanghai: TestClient) -> None:
    [row] = listed(shanghai, orgidentity="team1", agentno="1001", calltype="dialout")

    assert row["starttime"] == "2024-03-05T17:00:05+08:00"
    assert row["answertime"] == "2024-03-05T17:00:09+08:00"
    assert row["endtime"] == "2024-03-05T17:01:40+08:00"
    assert row["created_at"].endswith("+08:00")


def test_time_without_offset_is_read_in_the_display_zone(shanghai: TestClient) -> None:
    assert ids(shanghai, **{"from": "2024-03-05T17:00:06"}) == ["c3", "c2"]
    assert ids(shanghai, to="2024-03-05T17:00:06") == ["c1", "c4"]


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_csv_has_a_header_and_exactly_the_filtered_rows(stored: TestClient) -> None:
    params = {"format": "csv", "orgidentity": "team1", "disposition": "ANSWER"}

    header, *rows = csv_rows(stored.get("/api/v1/cdrs", params=params))

    assert header == CONTRACT_COLUMNS
    assert [dict(zip(header, row, strict=True))["diallogid"] for row in rows] == ["c3", "c1"]
    c1 = dict(zip(header, rows[1], strict=True))
    assert (c1["starttime"], c1["billsec"], c1["src"]) == (
        "2024-03-05T09:00:05+00:00",
        "91",
        "8001",
    )


def test_csv_agrees_with_json(stored: TestClient) -> None:
    header, *rows = csv_rows(stored.get("/api/v1/cdrs", params={"format": "csv"}))

    as_json = listed(stored)
    as_text = [{k: "" if v is None else str(v) for k, v in row.items()} for row in as_json]
    assert [dict(zip(header, row, strict=True)) for row in rows] == as_text


def test_csv_with_no_match_is_the_header_alone(stored: TestClient) -> None:
    rows = csv_rows(stored.get("/api/v1/cdrs", params={"format": "csv", "orgidentity": "none"}))

    assert rows == [CONTRACT_COLUMNS]


def test_csv_in_the_display_zone(shanghai: TestClient) -> None:
    params = {"format": "csv", "calltype": "dialin"}

    header, row = csv_rows(shanghai.get("/api/v1/cdrs", params=params))

    assert dict(zip(header, row, strict=True))["starttime"] == "2024-03-06T16:00:00+08:00"


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "10001"}, {"format": "xml"}, {"from": "yesterday"}],
)
def test_bad_parameters_are_422(stored: TestClient, params: dict[str, str]) -> None:
    assert stored.get("/api/v1/cdrs", params=params).status_code == 422


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/cdrs", {"from": "0001-01-01T00:00:00+01:00"}),
        ("/api/v1/cdrs", {"from": "0001-01-01T00:00:00"}),
        ("/api/v1/cdrs", {"to": "9999-12-31T23:59:59-14:00"}),
        ("/api/v1/cdrs", {"disposition": "MAYBE"}),
        ("/api/v1/cdrs", {"cursor": "!!not-a-cursor!!"}),
        ("/api/v1/cdrs", {"orgidentity": "\U0001f600" * 100}),
        ("/api/v1/cdrs", {"orgidentity": "a\x00b"}),
        ("/api/v1/cdrs", {"agentno": "\x00"}),
        ("/api/v1/cdrs/99999999999999999999", {}),
        ("/api/v1/cdrs", {"min_billsec": "99999999999999999999"}),
        ("/api/v1/events", {"before": "-99999999999999999999"}),
    ],
    ids=[
        "from-year-0",
        "naive-from-year-0",
        "to-year-10000",
        "unknown-disposition",
        "bad-cursor",
        "long-emoji-team",
        "nul-team",
        "nul-agent",
        "huge-id",
        "huge-min-billsec",
        "huge-before",
    ],
)
def test_hostile_query_values_are_not_a_server_error(
    settings: Settings, engine: Engine, path: str, params: dict[str, str]
) -> None:
    shown_in = Settings(database_url=settings.database_url, display_timezone="Asia/Shanghai")

    with TestClient(create_app(shown_in, engine), raise_server_exceptions=False) as client:
        response = client.get(path, params=params)

    assert response.status_code < 500, response.text


def token(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


FORGED_CURSORS = {
    "true-as-id": ["2024-03-05T09:00:05+00:00", True, 5, 4, "newest"],
    "id-past-64-bits": ["2024-03-05T09:00:05+00:00", 2**70, 5, 4, "newest"],
    "ceiling-past-64-bits": ["2024-03-05T09:00:05+00:00", 1, 2**63, 4, "newest"],
    "year-1-east": ["0001-01-01T00:00:00+14:00", 1, 5, 4, "newest"],
    "year-9999-west": ["9999-12-31T23:59:59-14:00", 1, 5, 4, "oldest"],
    "unknown-sort": ["2024-03-05T09:00:05+00:00", 1, 5, 4, "sideways"],
}


@pytest.mark.parametrize("document", list(FORGED_CURSORS.values()), ids=list(FORGED_CURSORS))
def test_a_forged_cursor_is_a_400_naming_it(stored: TestClient, document: Any) -> None:
    for params in ({}, {"format": "csv"}):
        answer = stored.get("/api/v1/cdrs", params=params | {"cursor": token(document)})

        assert answer.status_code == 400, answer.text
        assert list(answer.json()["detail"]) == ["cursor"]


def test_a_cursor_nested_thousands_deep_is_a_400(stored: TestClient) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()

    answer = stored.get("/api/v1/cdrs", params={"cursor": deep})

    assert answer.status_code == 400
    assert deep not in answer.text


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/api/v1/cdrs", "from", "1899-12-31T23:59:59Z"),
        ("/api/v1/cdrs", "to", "3000-01-01T00:00:00"),
        ("/api/v1/stats?group_by=day", "from", "0001-01-01T00:00:00+14:00"),
        ("/api/v1/events", "to", "9999-12-31T23:59:59-14:00"),
        ("/api/v1/events", "from", "1000-01-01T00:00:00"),
    ],
)
def test_a_time_outside_the_window_is_a_400_naming_it(
    stored: TestClient, path: str, name: str, value: str
) -> None:
    answer = stored.get(path, params={name: value})

    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"] == {name: "is outside the years 1900 to 2999"}


def test_the_ends_of_the_window_are_times_a_reader_may_ask_about(stored: TestClient) -> None:
    window = {"from": "1900-01-01T00:00:00Z", "to": "2999-12-31T23:59:59Z"}

    assert ids(stored, **window) == ["c3", "c2", "c1", "c4"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/cdrs/9223372036854775808", "/api/v1/rejected/0", "/api/v1/events?before=0"],
)
def test_ids_outside_a_64_bit_column_are_a_422(stored: TestClient, path: str) -> None:
    assert stored.get(path).status_code == 422


def test_an_unknown_zone_is_a_400_that_does_not_repeat_it(stored: TestClient) -> None:
    answer = stored.get("/api/v1/cdrs", params={"tz": "Mars/" + "x" * 200})

    assert answer.status_code == 400
    assert answer.json()["detail"] == {"tz": "is not an IANA time zone name (e.g. Asia/Shanghai)"}


def test_a_dead_letter_has_an_endpoint_of_its_own(stored: TestClient) -> None:
    refused = stored.post("/astercc/team1/events", json={"event": "ringing", "x": "y" * 20_000})
    letter_id = refused.json()["dead_letter_id"]

    [listed] = stored.get("/api/v1/rejected").json()["rejected"]
    whole = stored.get(f"/api/v1/rejected/{letter_id}").json()

    assert (listed["body_truncated"], len(listed["body"])) == (True, 16 * 1024)
    assert whole["body_truncated"] is False
    assert json.loads(whole["body"])["x"] == "y" * 20_000
    assert whole | {"body": "", "body_truncated": True} == listed | {"body": ""}
    assert stored.get(f"/api/v1/rejected/{letter_id + 1}").status_code == 404
