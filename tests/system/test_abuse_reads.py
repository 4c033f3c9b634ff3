"""Reads an anonymous or ordinary reader can make expensive: statistics over a long
time span, listings of huge events, forged page cursors."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from system.conftest import (
    FORM,
    Answer,
    Figures,
    KiB,
    MiB,
    Server,
    event_body,
    fetch,
    watching,
)

# Each measures the latency of ordinary pushes under abuse: nothing runs beside it.
pytestmark = pytest.mark.alone

STATS_SECONDS = 0.5
# Six statistics that each walk two centuries hour by hour take half a minute together.
STATS_WAIT = httpx.Timeout(12.0, connect=5.0)
# Just under the 1 MiB push limit with the event's other fields.
HUGE_EXTRA = MiB - KiB
FAIR_EXTRA = 4000
LISTING_AT_MOST = 8 * MiB
# Enough to read a bounded listing many times over; a 200 MiB one is cut off.
LISTING_WAIT = 8.0


def _push(client: httpx.Client, sessionid: str, **changes: str) -> httpx.Response:
    return client.post("/astercc/1/events", content=event_body(sessionid, **changes), headers=FORM)


def test_statistics_cost_follows_calls_not_their_time_span(
    server: Server, figures: Figures
) -> None:
    ends = {"span-first": "1970-01-01 00:00:01", "span-last": "2199-12-31 23:59:59"}
    with server.client() as client:
        for sessionid, moment in ends.items():
            pushed = _push(client, sessionid, event="hangup", eventTime=moment)
            assert pushed.status_code == 200, pushed.text
        listed = client.get("/api/v1/cdrs", params={"team": "1"}).json()
    assert set(ends) <= {cdr["diallogid"] for cdr in listed["cdrs"]}

    def statistics(_: int) -> Answer:
        with server.client(timeout=STATS_WAIT) as client:
            return fetch(client, "GET", "/api/v1/stats", params={"group_by": "hour"})

    with watching(server, figures) as watch, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(statistics, range(6)))
    figures("answers", [a.shown() for a in answers])
    figures("slowest_seconds", max(a.seconds for a in answers))
    assert [a.status for a in answers] == [200] * 6
    assert max(a.seconds for a in answers) < STATS_SECONDS
    watch.assert_unharmed()


def test_huge_extra_fields_are_refused_and_listings_stay_small(
    server: Server, figures: Figures
) -> None:
    # A day of their own, so the listings hold these events and not the normal pushes;
    # the huge ones come last, so a newest-first listing meets them if they were kept.
    day = {"eventTime": "2026-11-27 10:00:00"}
    huge_tail = ("&userdata=" + "u" * HUGE_EXTRA).encode()
    listed = "/api/v1/events?limit=200&from=2026-11-27T00:00:00Z"

    def push_huge(number: int) -> httpx.Response:
        body = event_body(f"huge-{number}", **day).encode() + huge_tail
        assert len(body) < MiB
        with server.client() as client:
            return client.post("/astercc/1/events", content=body, headers=FORM)

    def listing(path: str) -> Answer:
        with server.client() as client:
            return fetch(client, "GET", path, within=LISTING_WAIT)

    with watching(server, figures) as watch:
        with server.client() as client:
            fair = [
                _push(client, f"fair-{n}", userdata="f" * FAIR_EXTRA, **day).status_code
                for n in range(200)
            ]
        began = time.perf_counter()
        # Two at a time: the client builds and sends one while the server stores another.
        with ThreadPoolExecutor(2) as pool:
            huge = list(pool.map(push_huge, range(200)))
        figures("huge_pushes_seconds", time.perf_counter() - began)
        with ThreadPoolExecutor(3) as pool:
            events = list(pool.map(listing, [listed] * 3))
        rejected = listing("/api/v1/rejected?limit=200")
    named = sum("userdata" in a.text for a in huge if a.status_code == 400)
    figures("fair_answers", dict(Counter(fair)))
    figures("huge_answers", dict(Counter(a.status_code for a in huge)))
    figures("huge_refusals_naming_userdata", named)
    figures("events_answers", [a.shown() for a in events])
    figures("events_bytes", [a.size for a in events])
    figures("events_slowest_seconds", max(a.seconds for a in events))
    figures("rejected_answer", rejected.shown())
    figures("rejected_bytes", rejected.size)
    assert fair == [200] * 200
    assert [a.status_code for a in huge] == [400] * 200
    assert named == 200
    assert [a.status for a in events] == [200] * 3
    assert max(a.size for a in events) < LISTING_AT_MOST
    assert rejected.status == 200
    assert rejected.size < LISTING_AT_MOST
    watch.assert_unharmed()


def _cursor(document: str) -> str:
    """A page cursor as the service writes one: base64url of JSON, without padding."""
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


# Each is well-formed enough to reach the query; the sort names are `report.Sort`'s.
FORGED_CURSORS = {
    "id_past_64_bits": ["2026-01-01T00:00:00+00:00", 99999999999999999999999, 1, 1, "newest"],
    "year_9999": ["9999-12-31T23:59:59+00:00", 1, 1, 1, "newest"],
    "year_1": ["0001-01-01T00:00:00+00:00", 1, 1, 1, "oldest"],
    "true_as_id": ["2026-01-01T00:00:00+00:00", True, 1, 1, "newest"],
}


def test_forged_cursors_are_refused_not_crashed_on(shared_server: Server, figures: Figures) -> None:
    cursors = {name: _cursor(json.dumps(document)) for name, document in FORGED_CURSORS.items()}
    cursors["nested_3000_deep"] = _cursor("[" * 3000 + "]" * 3000)

    def listed_after(cursor: str) -> Answer:
        # A connection each: a server that fails one request may drop the connection,
        # and the next request on it would fail for that reason, not its own.
        with shared_server.client() as client:
            return fetch(client, "GET", "/api/v1/cdrs", params={"cursor": cursor})

    with watching(shared_server, figures) as watch:
        answers = {name: listed_after(cursor) for name, cursor in cursors.items()}
    for name, answer in answers.items():
        figures(f"{name}_answer", answer.shown())
    assert {name: a.status for name, a in answers.items()} == dict.fromkeys(cursors, 400)
    watch.assert_unharmed()
