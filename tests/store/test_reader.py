"""The read side on each database: paging, exports, filters, stats, timeline, journal."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from cdrlog.core.excerpts import BODY_SHOWN, FIELDS_SHOWN, PAGE_BYTES, TIMELINE_EVENTS
from cdrlog.core.report import CdrFilter, Sort
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import ExpectedCdr, GeneratedCall, generate_calls
from cdrlog.store import queries
from cdrlog.store.database import make_engine
from cdrlog.store.reader import EventFilter, Reader
from cdrlog.store.tables import call_event, cdr, dead_letter
from cdrlog.web.app import create_app
from conftest import Backend, empty_tables
from support.listing import START, push, walk


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


# --- listings bounded in bytes ---------------------------------------------------------

T0 = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


def stored_events(engine: Engine, extras: list[str]) -> list[int]:
    """Journal rows as an older version stored them, before extra fields were capped;
    one per extra, a few sharing each event time. Their ids, oldest first."""
    rows = [
        {
            "orgidentity": "t1",
            "fingerprint": f"f{n}",
            "sessionid": "s1",
            "calltype": "dialout",
            "source": "CALLEE",
            "event": "ringing",
            "event_time": T0 + timedelta(seconds=n // 3),
            "fields": json.dumps(_fields(n, extra), sort_keys=True),
            "received_at": T0,
        }
        for n, extra in enumerate(extras)
    ]
    with engine.begin() as connection:
        connection.execute(call_event.insert(), rows)
        found = connection.execute(select(call_event.c.id).order_by(call_event.c.id))
        return [row.id for row in found]


def _fields(n: int, extra: str) -> dict[str, str]:
    # Sorted, `big` comes between `activenum` and `event`: a cut inside it drops the rest.
    return {"activenum": str(n), "big": extra, "event": "ringing", "sessionid": "s1"}


def answered(value: Any) -> int:
    """Bytes of `value` as the API answers it: compact UTF-8 JSON."""
    text = json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode())


def walk_journal(reader: Reader, budget: int) -> list[list[dict[str, Any]]]:
    pages, before = [], None
    while True:
        found = reader.events(EventFilter(), before, 1000, budget)
        pages.append(found.rows)
        if found.next_before is None:
            return pages
        before = found.next_before


def test_the_journal_pages_by_bytes_and_loses_no_event(engine: Engine) -> None:
    huge = "x" * (FIELDS_SHOWN * 3)
    escaped = "\u00e9" * FIELDS_SHOWN  # stored as \u00e9: six times as long
    extras = [huge if n % 3 == 0 else escaped if n % 3 == 1 else "small" for n in range(30)]
    ids = stored_events(engine, extras)
    budget = 3 * FIELDS_SHOWN

    pages = walk_journal(Reader(engine), budget)

    assert len(pages) > 5
    assert all(answered(page) <= budget for page in pages)
    seen = [row["id"] for page in pages for row in page]
    assert seen == sorted(ids, reverse=True)
    for row in (row for page in pages for row in page):
        n = int(row["fields"]["activenum"])
        if extras[n] == "small":
            assert (row["fields"], row["fields_truncated"]) == (_fields(n, "small"), False)
            continue
        cut = row["fields"].pop("big")
        assert row["fields_truncated"] is True
        assert len(cut) > FIELDS_SHOWN // 7
        assert extras[n].startswith(cut)
        assert row["fields"] == {"activenum": str(n)}


def test_a_cut_inside_an_escaped_character_leaves_no_half_of_it(engine: Engine) -> None:
    """Characters beyond the BMP are stored as a pair of escapes (12 characters): with
    the padding, the cut falls at each place inside such a pair once. Half a character
    would make the answer impossible to encode as UTF-8."""
    emoji = "\U0001f600" * FIELDS_SHOWN
    fields = [{"a": "p" * pad, "big": emoji, "event": "login"} for pad in range(12)]
    rows = [
        {
            "orgidentity": "t1",
            "fingerprint": f"f{pad}",
            "event": "login",
            "event_time": T0,
            "fields": json.dumps(value, sort_keys=True),
            "received_at": T0,
        }
        for pad, value in enumerate(fields)
    ]
    with engine.begin() as connection:
        connection.execute(call_event.insert(), rows)

    found = Reader(engine).events(EventFilter(), None, 100)

    assert len(found.rows) == 12
    for row in found.rows:
        cut = row["fields"]["big"]
        assert row["fields_truncated"] is True
        assert emoji.startswith(cut)
        assert len(cut) > FIELDS_SHOWN // 13
        json.dumps(row, default=str, ensure_ascii=False).encode()


def test_a_timeline_holds_at_most_its_count_of_events_in_order(engine: Engine) -> None:
    stored_cdr(engine, "s1")
    ids = stored_events(engine, ["small"] * (TIMELINE_EVENTS + 1))
    [cdr_id] = [row["id"] for row in Reader(engine).page(CdrFilter(), Sort.NEWEST, None, 1).rows]

    found = Reader(engine).cdr(cdr_id, None)

    assert found is not None
    assert found["events_truncated"] is True
    # Ties of three on event time straddle the batches the walk reads.
    assert [event["id"] for event in found["events"]] == ids[:TIMELINE_EVENTS]


def test_a_timeline_of_big_events_is_cut_at_the_budget(engine: Engine) -> None:
    stored_cdr(engine, "s1")
    ids = stored_events(engine, ["x" * FIELDS_SHOWN * 2] * 10)
    [cdr_id] = [row["id"] for row in Reader(engine).page(CdrFilter(), Sort.NEWEST, None, 1).rows]

    cut = Reader(engine).cdr(cdr_id, None, budget=4 * FIELDS_SHOWN)
    whole = Reader(engine).cdr(cdr_id, None)

    assert cut is not None
    assert whole is not None
    assert (cut["events_truncated"], len(cut["events"])) == (True, 3)
    assert answered(cut) <= 4 * FIELDS_SHOWN
    assert whole["events_truncated"] is False
    assert [e["id"] for e in whole["events"]] == ids
    assert all(e["fields_truncated"] for e in whole["events"])


def stored_letter(engine: Engine, body: bytes, reason: dict[str, Any] | None = None) -> int:
    row = {
        "received_at": T0,
        "orgidentity": "t1",
        "path": "/astercc/t1/events",
        "body": body,
        "truncated": False,
        "reason": json.dumps(reason or {"body": "is not JSON"}),
    }
    with engine.begin() as connection:
        key = connection.execute(dead_letter.insert(), row).inserted_primary_key
    assert key is not None
    return int(key[0])


def test_dead_letters_show_the_start_of_big_bodies_and_page_by_bytes(engine: Engine) -> None:
    euro = "\u20ac" * BODY_SHOWN  # three bytes each: the cut splits one
    long_reason = {str(n): "is not a known event " * 5 for n in range(2000)}
    letters = {
        stored_letter(engine, b"x" * (BODY_SHOWN * 4)): ("x" * BODY_SHOWN, True),
        stored_letter(engine, euro.encode()): ("\u20ac" * (BODY_SHOWN // 3), True),
        stored_letter(engine, b"\x00" * BODY_SHOWN): ("\x00" * BODY_SHOWN, False),
        stored_letter(engine, b"\xff{bad"): ("\ufffd{bad", False),
        stored_letter(engine, b"{}", long_reason): ("{}", False),
    }
    budget = BODY_SHOWN * 8
    reader, pages, before = Reader(engine), [], None
    while True:
        found = reader.dead_letter_listing(None, before, 1000, False, budget)
        pages.append(found.rows)
        if found.next_before is None:
            break
        before = found.next_before

    assert len(pages) > 1
    assert all(answered(page) <= budget for page in pages)
    shown = {row["id"]: row for page in pages for row in page}
    assert sorted(shown) == sorted(letters)
    assert {i: (row["body"], row["body_truncated"]) for i, row in shown.items()} == letters
    reason = shown[max(letters)]
    assert reason["reason_truncated"] is True
    assert 0 < len(reason["reason"]) < len(long_reason)
    assert all(long_reason[key].startswith(text) for key, text in reason["reason"].items())
    whole = reader.shown_dead_letter(min(letters), None)
    assert whole is not None
    assert (len(whole["body"]), whole["body_truncated"]) == (BODY_SHOWN * 4, False)
    assert reader.shown_dead_letter(min(letters), ("t2",)) is None


def test_a_page_of_cdrs_ends_at_its_budget_and_its_cursor_goes_on(engine: Engine) -> None:
    for n in range(10):
        stored_cdr(engine, f"c{n}", second=n)
    reader = Reader(engine)
    one_row = answered(reader.page(CdrFilter(), Sort.OLDEST, None, 1).rows[0])
    seen, cursor = [], None
    while True:
        found = reader.page(CdrFilter(), Sort.OLDEST, cursor, 50, budget=3 * one_row)
        assert 1 <= len(found.rows) <= 3
        seen += [row["diallogid"] for row in found.rows]
        if found.next_cursor is None:
            break
        cursor = found.next_cursor
    assert seen == [f"c{n}" for n in range(10)]


def test_the_journal_api_answers_about_4_mib_of_huge_old_events(
    backend: Backend, engine: Engine
) -> None:
    """The review's case, scaled down: events with huge extra fields, listed 1,000 at
    a time, came back whole (209 MB for 200 of 1 MiB)."""
    stored_cdr(engine, "s1")
    ids = stored_events(engine, ["y" * 100_000] * 80)
    app = create_app(Settings(database_url=backend.url), engine)
    pages, before = [], None
    with TestClient(app) as client:
        while True:
            params = {"limit": 1000} | ({"before": before} if before else {})
            answer = client.get("/api/v1/events", params=params)
            assert answer.status_code == 200, answer.text
            pages.append(answer)
            before = answer.json()["next_before"]
            if before is None:
                break
        [cdr_row] = client.get("/api/v1/cdrs").json()["cdrs"]
        detail = client.get(f"/api/v1/cdrs/{cdr_row['id']}")

    assert len(pages) == 2
    assert all(len(page.content) <= PAGE_BYTES for page in pages)
    events = [event for page in pages for event in page.json()["events"]]
    assert [event["id"] for event in events] == sorted(ids, reverse=True)
    assert all(event["fields_truncated"] for event in events)
    assert len(detail.content) <= PAGE_BYTES
    assert detail.json()["events_truncated"] is True
    assert [event["id"] for event in detail.json()["events"]] == ids[
        : len(pages[0].json()["events"])
    ]
