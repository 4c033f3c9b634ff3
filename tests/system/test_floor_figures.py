"""Every call-center figure the API gives, after a `cdrlog simulate`-style run in the
manual's shape against a real server, equals a recount in this test: the statistics,
missed calls and the floor now from the CDR list the API serves; agent time from the
agent events the simulator sent (never from cdrlog's journal or fold); agents by state
from the agent listing, itself checked against the simulator's expectation.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine

from cdrlog.core.hours import BusinessHours
from cdrlog.core.report import GroupBy, StatsTerms
from cdrlog.sim.simulate import SendSettings, run_simulation
from cdrlog.sim.traffic import GeneratedCall, delivery_order, generate_calls
from conftest import Backend
from support.callcenter import recount, same_figures
from support.chaos import wrong_agents, wrong_cdrs
from support.servers import running_server

ZONE = "Europe/Berlin"
CALLS = 160
# The state each agent event leaves an agent in (contract section 6), read here from the
# contract, not from cdrlog's table.
STATE_AFTER = {
    "login": "available",
    "logoff": "logged_out",
    "logout": "logged_out",
    "paused": "paused",
    "nopaused": "available",
    "hangupacw": "after_call_work",
    "acwstop": "available",
}
TERMS: tuple[dict[str, str], ...] = (
    {},
    {"service_level_seconds": "10", "short_abandon_seconds": "3"},
    {"business_hours": "08:00-20:00", "business_days": "mon-fri"},
)


def test_every_figure_equals_a_recount(backend: Backend, engine: Engine, tmp_path: Path) -> None:
    # Today's calls, so that the floor's "today" holds some: they end well before now.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    rng = random.Random(20261204)
    calls = generate_calls(rng, start, calls=CALLS, teams=2, agents=6, mean_gap_seconds=6)
    deliveries = delivery_order(calls, rng, duplicate_ratio=0.2, shuffle_ratio=1.0)

    with running_server(backend.url, tmp_path / "serve.log") as base:
        sent = run_simulation(deliveries, SendSettings(base_url=base, concurrency=16))
        assert sent.ok, sent.errors
        assert wrong_cdrs(engine, calls) == []
        assert wrong_agents(engine, calls, datetime.now(UTC)) == []
        with httpx.Client(base_url=base, timeout=30) as client:
            rows = cdr_list(client)
            assert len(rows) == CALLS
            check_stats(client, rows)
            check_missed(client, rows)
            check_agent_report(client, calls, rows, start)
            check_now(client, rows)


def cdr_list(client: httpx.Client) -> list[dict[str, Any]]:
    """Every CDR the API lists, its times as aware datetimes."""
    answer = client.get("/api/v1/cdrs", params={"format": "jsonl"})
    answer.raise_for_status()
    rows = [json.loads(line) for line in answer.text.splitlines()]
    for row in rows:
        for name in ("starttime", "answertime", "endtime"):
            row[name] = None if row[name] is None else datetime.fromisoformat(row[name])
    return rows


def check_stats(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    for asked in TERMS:
        terms = StatsTerms(
            int(asked.get("service_level_seconds", 20)),
            int(asked.get("short_abandon_seconds", 5)),
            BusinessHours.parse(asked["business_hours"], asked["business_days"])
            if "business_hours" in asked
            else None,
        )
        for by in GroupBy:
            params = {"group_by": by.value, "tz": ZONE} | asked
            answer = client.get("/api/v1/stats", params=params).json()
            expected = recount(rows, by, ZoneInfo(ZONE), terms)
            got = {(row["team"], row["group"]): row for row in answer["rows"]}
            assert set(got) == set(expected), (by, asked)
            for key, figures in expected.items():
                assert same_figures(got[key], figures), (by, asked, key, got[key], figures)
    inbound = [r for r in rows if r["calltype"] == "dialin"]
    assert any(r["answertime"] is None for r in inbound), "the run holds abandoned calls"
    assert any(r["hold_seconds"] for r in rows), "and holds"


def check_missed(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    window = timedelta(hours=24)
    for unresolved in (False, True):
        params = {"limit": "1000", "unresolved": str(unresolved).lower(), "tz": "UTC"}
        answer = client.get("/api/v1/missed", params=params).json()
        got = [(m["diallogid"], m["callbacks"], m["resolved"]) for m in answer["missed"]]
        expected = []
        for row in sorted(rows, key=lambda r: (r["starttime"], r["id"]), reverse=True):
            if not _abandoned(row):
                continue
            later = [
                r
                for r in rows
                if r["orgidentity"] == row["orgidentity"]
                and row["starttime"] < r["starttime"] <= row["starttime"] + window
                and row["src"] is not None
            ]
            backs = [r for r in later if r["calltype"] == "dialout" and r["dst"] == row["src"]]
            through = [
                r
                for r in later
                if r["calltype"] == "dialin" and r["src"] == row["src"] and r["answertime"]
            ]
            resolved = any(r["answertime"] for r in backs) or bool(through)
            if not (unresolved and resolved):
                expected.append((row["diallogid"], len(backs), resolved))
        assert got == expected
        if not unresolved:
            # Returning callers: some missed calls were called back, some resolved.
            assert any(backs for _, backs, _ in expected)
            assert any(resolved for _, _, resolved in expected)
    assert expected, "the run holds unresolved missed calls"


def _abandoned(row: dict[str, Any]) -> bool:
    if row["calltype"] != "dialin" or row["status"] == "open" or row["answertime"]:
        return False
    wait: timedelta = row["endtime"] - row["starttime"]
    return wait >= timedelta(seconds=5)


def check_agent_report(
    client: httpx.Client, calls: list[GeneratedCall], rows: list[dict[str, Any]], start: datetime
) -> None:
    # A range that begins inside the traffic, so that states carried in from before
    # it count, and ends after it (in the past: the report stops there, not now).
    since = start + timedelta(minutes=5)
    until = max(call.last_moment for call in calls) + timedelta(minutes=3)
    params = {"from": since.isoformat(), "to": until.isoformat()}
    answer = client.get("/api/v1/agents/report", params=params).json()
    got = {(a["orgidentity"], a["agentno"]): a for a in answer["agents"]}
    events: defaultdict[tuple[str, str], list[tuple[datetime, int, str]]] = defaultdict(list)
    for call in calls:
        for fields, moment in zip(call.agent_events, call.agent_event_times, strict=True):
            if fields["event"] in STATE_AFTER:
                key = (call.team, fields["agentno"])
                events[key].append((moment, int(fields.get("eventid") or 0), fields["event"]))
    handled: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["agentno"] and since <= row["starttime"] < until:
            handled[(row["orgidentity"], row["agentno"])].append(row)
    assert set(got) == set(events) | set(handled)
    busy = 0
    for key, shown in got.items():
        spent = time_in_states(events.get(key, []), since, until)
        talk = sum(r["billsec"] or 0 for r in handled[key])
        answered = sum(r["disposition"] == "ANSWER" for r in handled[key])
        logged_in = sum(v for state, v in spent.items() if state != "logged_out")
        expected = {
            "logged_in_seconds": logged_in,
            "paused_seconds": spent["paused"],
            "after_call_work_seconds": spent["after_call_work"],
            "talk_seconds": talk,
            "answered_calls": answered,
        }
        assert {name: shown[name] for name in expected} == expected, key
        available = logged_in - spent["paused"]
        work = talk + spent["after_call_work"]
        assert _close(shown["occupancy"], work / available if available > 0 else None), key
        assert _close(shown["aht"], work / answered if answered else None), key
        busy += logged_in > 0 and answered > 0
    assert busy, "some agents worked in the range"


def time_in_states(
    events: Iterable[tuple[datetime, int, str]], since: datetime, until: datetime
) -> Counter[str]:
    """Seconds in each state within [since, until): between two events the agent is in
    the state the first left; before any, logged out."""
    spent: Counter[str] = Counter()
    state, at = "logged_out", since
    for moment, _, event in sorted(events):
        if moment >= until:
            break
        if moment > at:
            spent[state] += int((moment - at).total_seconds())
            at = moment
        state = STATE_AFTER[event]
    spent[state] += int((until - at).total_seconds())
    return spent


def check_now(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    now = client.get("/api/v1/now", params={"tz": ZONE}).json()
    at = datetime.fromisoformat(now["at"])
    midnight = datetime.combine(at.date(), time(), tzinfo=ZoneInfo(ZONE))
    today = [r for r in rows if r["starttime"] >= midnight]
    per_queue = recount(today, GroupBy.QUEUE, ZoneInfo(ZONE), StatsTerms())
    waiting = [
        r
        for r in rows
        if r["calltype"] == "dialin" and r["status"] == "open" and r["answertime"] is None
    ]
    agents = client.get("/api/v1/agents").json()["agents"]
    by_queue: defaultdict[tuple[str, str | None], Counter[str]] = defaultdict(Counter)
    for agent in agents:
        by_queue[(agent["orgidentity"], agent["agent_group"])][agent["state"]] += 1
    assert now["waiting"] == len(waiting)
    assert Counter({k: v for k, v in now["agents"].items() if v}) == Counter(
        a["state"] for a in agents
    )
    shown = {(q["orgidentity"], q["queue"]): q for q in now["queues"]}
    assert {(t, q or "") for t, q in shown} == {(t, q) for t, q in per_queue} | {
        (t, q or "") for t, q in by_queue
    }
    for (team, queue), row in shown.items():
        assert Counter({k: v for k, v in row["agents"].items() if v}) == by_queue[(team, queue)]
        expected = per_queue.get((team, queue or ""))
        if expected is None:
            assert row["today"] is None or row["today"]["offered"] == 0
        else:
            assert same_figures(row["today"], expected), (team, queue, row["today"], expected)
    summed = sum(
        (Counter({k: v for k, v in f.items() if k in _COUNTS}) for f in per_queue.values()),
        Counter(),
    )
    for name in _COUNTS:
        assert now["today"][name] == summed[name], name


_COUNTS = ("offered", "short_abandoned", "abandoned", "answered_within")


def _close(got: float | None, expected: float | None) -> bool:
    if got is None or expected is None:
        return got is expected
    return abs(got - expected) <= 0.001
