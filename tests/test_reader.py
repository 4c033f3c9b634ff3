"""The read side on each database: paging, exports, filters, stats, timeline, journal."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cdrlog import queries
from cdrlog.app import create_app
from cdrlog.database import make_engine
from cdrlog.reader import Reader
from cdrlog.report import CdrFilter, Sort
from cdrlog.settings import Settings
from cdrlog.storage import cdr
from cdrlog.traffic import ExpectedCdr, GeneratedCall, generate_calls
from conftest import Backend, empty_tables

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


@pytest.fixture(scope="module")
def loaded(backend: Backend) -> Iterator[tuple[TestClient, list[GeneratedCall]]]:
    """One load per database for every test here: these tests only read."""
    engine = make_engine(backend.url)
    empty_tables(engine)
    generated = generate_calls(
        random.Random(5), START, calls=80, teams=2, agents=3, mean_gap_seconds=400
    )
    with TestClient(create_app(Settings(database_url=backend.url), engine)) as client:
        push(client, generated)
        yield client, generated
    engine.dispose()


@pytest.fixture
def client(loaded: tuple[TestClient, list[GeneratedCall]]) -> TestClient:
    return loaded[0]


@pytest.fixture
def calls(loaded: tuple[TestClient, list[GeneratedCall]]) -> list[GeneratedCall]:
    return loaded[1]


def walk(client: TestClient, **params: Any) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/cdrs", params=query).json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


def test_pages_cover_every_cdr_once_in_order(
    client: TestClient, calls: list[GeneratedCall]
) -> None:
    pages = list(walk(client, limit=7, sort="oldest"))
    seen = [row["diallogid"] for page in pages for row in page["cdrs"]]
    expected = sorted(calls, key=lambda c: c.expected.starttime)
    assert len(seen) == len(set(seen)) == len(calls)
    starts = [datetime.fromisoformat(r["starttime"]) for p in pages for r in p["cdrs"]]
    assert starts == sorted(starts)
    assert {p["total"] for p in pages} == {len(calls)}
    assert set(seen) == {c.expected.diallogid for c in expected}


def test_a_foreign_cursor_is_a_400(client: TestClient) -> None:
    response = client.get("/api/v1/cdrs", params={"cursor": "garbage"})
    assert response.status_code == 400
    assert "cursor" in response.text


def _expected_rows(calls: list[GeneratedCall], **match: str) -> set[str]:
    return {
        c.expected.diallogid
        for c in calls
        if all(getattr(c.expected, name) == value for name, value in match.items())
    }


def test_csv_export_is_exactly_the_filtered_set(
    client: TestClient, calls: list[GeneratedCall]
) -> None:
    params = {"team": "team1", "agent": "1002", "format": "csv", "tz": "Asia/Shanghai"}
    response = client.get("/api/v1/cdrs", params=params)
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["diallogid"] for r in rows} == _expected_rows(calls, team="team1", agentno="1002")
    assert all(r["starttime"].endswith("+08:00") for r in rows)


def test_accept_text_csv_and_jsonl_give_the_same_set(
    client: TestClient, calls: list[GeneratedCall]
) -> None:
    as_csv = client.get(
        "/api/v1/cdrs", params={"disposition": "BUSY"}, headers={"Accept": "text/csv"}
    )
    as_jsonl = client.get("/api/v1/cdrs", params={"disposition": "BUSY", "format": "jsonl"})
    from_csv = {r["diallogid"] for r in csv.DictReader(io.StringIO(as_csv.text))}
    from_jsonl = {json.loads(line)["diallogid"] for line in as_jsonl.text.splitlines()}
    assert from_csv == from_jsonl == _expected_rows(calls, disposition="BUSY")


def test_number_prefix_and_min_billsec_filters(
    client: TestClient, calls: list[GeneratedCall]
) -> None:
    one = calls[0].expected
    prefix = one.dst[:4]
    rows = client.get("/api/v1/cdrs", params={"number": prefix + "*", "limit": 1000}).json()
    wanted = {
        c.expected.diallogid
        for c in calls
        if c.expected.src.startswith(prefix) or c.expected.dst.startswith(prefix)
    }
    assert {r["diallogid"] for r in rows["cdrs"]} == wanted
    long_calls = client.get("/api/v1/cdrs", params={"min_billsec": 60, "limit": 1000}).json()
    assert {r["diallogid"] for r in long_calls["cdrs"]} == {
        c.expected.diallogid for c in calls if c.expected.billsec >= 60
    }


def _bucket(cdr_: ExpectedCdr, by: str, zone: ZoneInfo) -> str:
    local = cdr_.starttime.astimezone(zone)
    if by == "day":
        return local.date().isoformat()
    return local.replace(minute=0, second=0).isoformat(timespec="minutes")


@pytest.mark.parametrize("by", ["agent", "team", "day", "hour"])
@pytest.mark.parametrize("tz", ["Europe/Berlin", "Asia/Shanghai"])
def test_stats_match_a_recount_of_the_calls(
    client: TestClient, calls: list[GeneratedCall], by: str, tz: str
) -> None:
    zone = ZoneInfo(tz)
    groups: dict[str, list[ExpectedCdr]] = defaultdict(list)
    for call in calls:
        key = {"agent": call.expected.agentno, "team": call.expected.team}.get(by)
        groups[key or _bucket(call.expected, by, zone)].append(call.expected)
    if by == "agent":
        groups = defaultdict(list)
        for call in calls:
            groups[f"{call.expected.team}/{call.expected.agentno}"].append(call.expected)
    rows = client.get("/api/v1/stats", params={"group_by": by, "tz": tz}).json()["rows"]
    got = {(f"{r['team']}/{r['group']}" if by == "agent" else r["group"]): r for r in rows}
    assert set(got) == set(groups)
    for key, members in groups.items():
        answered = [m for m in members if m.disposition == "ANSWER"]
        row = got[key]
        assert row["calls"] == len(members)
        assert row["answered"] == len(answered)
        assert row["busy"] == sum(m.disposition == "BUSY" for m in members)
        assert row["failed"] == sum(m.disposition in ("FAILED", "CONGESTION") for m in members)
        assert row["unanswered"] == sum(m.disposition == "NOANSWER" for m in members)
        assert row["talk_time"] == sum(m.billsec for m in members)
        assert row["asr"] == pytest.approx(len(answered) / len(members))
        if answered:
            acd = sum(m.billsec for m in answered) / len(answered)
            ring = sum(
                (m.answertime - m.starttime).total_seconds() for m in answered if m.answertime
            ) / len(answered)
            assert row["acd"] == pytest.approx(acd, abs=0.001)
            assert row["avg_ring_time"] == pytest.approx(ring, abs=0.001)


def test_a_cdr_comes_with_its_timeline(client: TestClient, calls: list[GeneratedCall]) -> None:
    call = calls[3]
    [row] = client.get(
        "/api/v1/cdrs", params={"team": call.expected.team, "number": call.expected.dst}
    ).json()["cdrs"][:1] or [None]
    assert row is not None
    detail = client.get(f"/api/v1/cdrs/{row['id']}", params={"tz": "Asia/Shanghai"}).json()
    matching = [c for c in calls if c.expected.diallogid == detail["diallogid"]]
    assert len(detail["events"]) == len(matching[0].events)
    times = [datetime.fromisoformat(e["event_time"]) for e in detail["events"]]
    assert times == sorted(times)
    assert all(e["received_at"].endswith("+08:00") for e in detail["events"])
    assert detail["events"][0]["fields"]["sessionid"] == detail["diallogid"]
    assert client.get("/api/v1/cdrs/999999999").status_code == 404


def test_the_journal_filters_by_session(client: TestClient, calls: list[GeneratedCall]) -> None:
    call = calls[1]
    params = {"team": call.expected.team, "sessionid": call.expected.diallogid}
    events = client.get("/api/v1/events", params=params).json()["events"]
    assert len(events) == len(call.events)
    everything = client.get("/api/v1/events", params={"limit": 1000}).json()["events"]
    assert len(everything) == sum(len(c.events) + len(c.agent_events) for c in calls)


def test_bad_reader_input_is_a_400_not_a_500(client: TestClient) -> None:
    for params in (
        {"tz": "Mars/Olympus"},
        {"disposition": "MAYBE"},
        {"team": "a", "orgidentity": "b"},
        {"from": "0001-01-01T00:00:00+01:00"},
    ):
        assert client.get("/api/v1/cdrs", params=params).status_code == 400, params
    assert client.get("/api/v1/stats", params={"group_by": "week"}).status_code == 422


def stored_cdr(engine: Engine, diallogid: str, second: int = 0) -> None:
    moment = datetime(2024, 3, 5, 9, 0, second, tzinfo=UTC)
    row = {
        "orgidentity": "t1",
        "diallogid": diallogid,
        "calltype": "dialout",
        "target": "DialOut",
        "starttime": moment,
        "disposition": "ANSWER",
        "status": "closed",
        "created_at": moment,
        "updated_at": moment,
    }
    with engine.begin() as connection:
        connection.execute(cdr.insert(), row)


def test_a_first_page_reads_its_ceiling_and_count_in_one_snapshot(engine: Engine) -> None:
    """The count leaves out `id <= ceiling` (it is faster without): a CDR committed
    between the two reads must then be invisible to both."""
    stored_cdr(engine, "before")
    with Reader(engine).connect(snapshot=True) as seen:
        ceiling = seen.execute(queries.highest_id()).scalar_one()
        stored_cdr(engine, "meanwhile")
        assert seen.execute(queries.count(CdrFilter())).scalar_one() == 1
    assert Reader(engine).count(CdrFilter()) == 2
    assert ceiling == Reader(engine).page(CdrFilter(), Sort.NEWEST, None, 1).rows[0]["id"] - 1


@pytest.mark.parametrize("sort", list(Sort))
@pytest.mark.parametrize("size", [1, 3, 4])
def test_pages_through_equal_start_times_miss_and_repeat_nothing(
    engine: Engine, sort: Sort, size: int
) -> None:
    """Ties on starttime straddle page boundaries; the cursor takes over the filter's
    time bound from the second page on, and the other bound still holds."""
    for n in range(10):
        stored_cdr(engine, f"c{n}", second=(0, 5, 5, 5, 5, 9, 9, 20, 20, 30)[n])
    wanted = CdrFilter(
        start_from=datetime(2024, 3, 5, 9, 0, 5, tzinfo=UTC),
        start_to=datetime(2024, 3, 5, 9, 0, 30, tzinfo=UTC),
    )
    reader = Reader(engine)
    seen, cursor = [], None
    while True:
        found = reader.page(wanted, sort, cursor, size)
        seen += [(row["starttime"], row["id"]) for row in found.rows]
        assert found.total == 8
        if found.next_cursor is None:
            break
        cursor = found.next_cursor
    assert seen == sorted(seen, reverse=sort is Sort.NEWEST)
    assert len(set(seen)) == len(seen) == 8
    walked = [row for batch in reader.batches(wanted, sort, size) for row in batch]
    assert [row[0] for row in walked] == [row_id for _, row_id in seen]
