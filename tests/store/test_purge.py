"""Retention (`cdrlog purge`), on every backend: exactly the old rows go, a batch at a
time; a call's CDR and its journal rows go together; a dry run deletes nothing.

The world below holds, for two teams, one call (or agent event, or dead letter) of each
kind that retention must tell apart, each received at a chosen time. Each event goes in
through its team's push URL, as asterCC's own events name no team.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cdrlog.cli.ops import purge as purge_command
from cdrlog.core.accepted import Accepted
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import Intake
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.purge import PurgeCounts, purge
from cdrlog.store.tables import call_event, call_session, cdr, dead_letter
from conftest import Backend

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
CUT = NOW - timedelta(days=30)
OLD = CUT - timedelta(days=10)
RECENT = CUT + timedelta(days=10)
TEAMS = ("team1", "team2")


@dataclass(frozen=True, slots=True)
class Kept:
    """What one thing of the world leaves in each table; whether a purge takes it."""

    name: str
    team: str | None
    rows: Counter[tuple[str, Any]]
    old: bool


def ingest(engine: Engine, team: str, events: Sequence[dict[str, str]], received: datetime) -> None:
    intake = Intake(Settings(), Ingestor(engine, clock=lambda: received))
    checked = [intake.check(team, event) for event in events]
    accepted = [one for one in checked if isinstance(one, Accepted)]
    assert len(accepted) == len(checked)
    intake.ingestor.ingest_many(accepted)


def call_rows(call: GeneratedCall, cdr_: bool = True, session: bool = True) -> Counter[Any]:
    key = (call.expected.team, call.expected.diallogid)
    rows: Counter[Any] = Counter({("call_event", key): len(call.events)})
    rows.update([("cdr", key)] if cdr_ else [])
    rows.update([("call_session", key)] if session else [])
    return rows


def agent_rows(call: GeneratedCall) -> Counter[Any]:
    """The journal rows of the agent events that ride with the call: they belong to no
    call, so retention judges them by their own age, not with the call's CDR."""
    return Counter(("call_event", (call.team, event["agentno"])) for event in call.agent_events)


def with_agents(
    engine: Engine, name: str, call: GeneratedCall, received: datetime, old: bool
) -> list[Kept]:
    """The call's rows (its own events are the caller's to ingest), and the rows of the
    agent events that ride with it, ingested here as received at `received`."""
    ingest(engine, call.team, call.agent_events, received)
    agents = Kept(f"{name}: agent events", call.team, agent_rows(call), received < CUT)
    return [Kept(name, call.team, call_rows(call), old), agents]


def stray(team: str, sessionid: str, calltype: str, *events: tuple[str, datetime]) -> list[Any]:
    """A call's agent leg only (or a call type with no CDR): journal, no CDR."""
    return [
        {
            "orgidentity": team,
            "sessionid": sessionid,
            "calltype": calltype,
            "source": "CALLER",
            "event": event,
            "eventTime": at.strftime("%Y-%m-%d %H:%M:%S"),
            "activenum": "8001",
        }
        for event, at in events
    ]


def teams_calls(seed: int, start: datetime, team: str) -> list[GeneratedCall]:
    """Three or more calls of `team` (the seeds below give each team at least three)."""
    calls = generate_calls(random.Random(seed), start, calls=10, teams=2)
    return [call for call in calls if call.team == team]


def build_team(engine: Engine, team: str) -> list[Kept]:
    """One team's share of the world."""
    old_calls, new_calls = teams_calls(1, OLD, team), teams_calls(2, RECENT, team)
    late, early = old_calls.pop(), new_calls.pop()
    world: list[Kept] = []
    for call in old_calls:
        world += with_agents(engine, "old call", call, OLD, True)
    for call in new_calls:
        world += with_agents(engine, "new call", call, RECENT, False)
    ingest(engine, team, [e for call in old_calls for e in call.events], OLD)
    ingest(engine, team, [e for call in new_calls for e in call.events], RECENT)
    # A hangup received after the cut goes with its old call's CDR.
    ingest(engine, team, late.events[:-1], OLD)
    ingest(engine, team, late.events[-1:], RECENT)
    world += with_agents(engine, "late", late, OLD, True)
    # Events received before the cut stay with their recent call's CDR (its agents'
    # events, received then too, do not: they go by their own age).
    ingest(engine, team, early.events, OLD)
    world += with_agents(engine, "early", early, OLD, False)
    world += build_strays(engine, team)
    return world


def build_strays(engine: Engine, team: str) -> list[Kept]:
    """Calls without a CDR, agent events and dead letters, old and recent."""
    internal = stray(team, f"{team}-internal", "internal", ("ringing", OLD), ("hangup", OLD))
    ingest(engine, team, internal, OLD)
    leg = stray(team, f"{team}-leg", "dialout", ("ringing", OLD), ("answer", OLD))
    ingest(engine, team, leg, OLD)
    mixed = stray(team, f"{team}-mixed", "dialout", ("ringing", OLD), ("hangup", CUT))
    ingest(engine, team, mixed[:1], OLD)
    ingest(engine, team, mixed[1:], RECENT)
    logins = []
    for agentno, at in (("7001", OLD), ("7002", RECENT)):
        login = {"orgidentity": team, "event": "login", "agentno": agentno, "agentphone": "8999"}
        ingest(engine, team, [login | {"eventTime": at.strftime("%Y-%m-%d %H:%M:%S")}], at)
        logins.append(Kept("login", team, Counter({("call_event", (team, agentno)): 1}), at < CUT))
    return [
        Kept("internal", team, journaled((team, f"{team}-internal"), session=False), True),
        Kept("leg", team, journaled((team, f"{team}-leg"), session=True), True),
        Kept("mixed", team, journaled((team, f"{team}-mixed"), session=True), False),
        *logins,
        *[keep_letter(engine, team, at) for at in (OLD, OLD, RECENT)],
    ]


def journaled(key: tuple[str, str], session: bool) -> Counter[tuple[str, Any]]:
    """The rows of a two-event call without a CDR."""
    rows: Counter[tuple[str, Any]] = Counter({("call_event", key): 2})
    rows.update([("call_session", key)] if session else [])
    return rows


def keep_letter(engine: Engine, team: str | None, at: datetime) -> Kept:
    path = f"/astercc/{team}/events/{at.isoformat()}"
    letter = DeadLetter(path, team, None, None, b"x", False, {"body": "bad"})
    Ingestor(engine, clock=lambda: at).dead_letter(letter)
    return Kept("dead letter", team, Counter({("dead_letter", (team, path)): 1}), at < CUT)


@pytest.fixture
def world(engine: Engine) -> list[Kept]:
    built = build_team(engine, "team1") + build_team(engine, "team2")
    return [*built, keep_letter(engine, None, OLD)]


def contents(engine: Engine) -> Counter[tuple[str, Any]]:
    """Every row of the four tables, as (table, identity)."""
    with engine.connect() as connection:
        rows: Counter[tuple[str, Any]] = Counter()
        for row in connection.execute(select(cdr.c.orgidentity, cdr.c.diallogid)):
            rows[("cdr", tuple(row))] += 1
        for row in connection.execute(select(call_event)):
            rows[("call_event", (row.orgidentity, row.sessionid or row.agentno))] += 1
        for row in connection.execute(select(call_session.c.orgidentity, call_session.c.sessionid)):
            rows[("call_session", tuple(row))] += 1
        for row in connection.execute(select(dead_letter.c.orgidentity, dead_letter.c.path)):
            rows[("dead_letter", tuple(row))] += 1
    return rows


def remaining(world: Sequence[Kept], team: str | None = None) -> Counter[tuple[str, Any]]:
    rows: Counter[tuple[str, Any]] = Counter()
    for thing in world:
        if not thing.old or (team is not None and thing.team != team):
            rows.update(thing.rows)
    return rows


def per_table(rows: Counter[tuple[str, Any]]) -> dict[str, int]:
    tables: Counter[str] = Counter()
    for (table, _), number in rows.items():
        tables[table] += number
    return {name: tables[name] for name in ("cdr", "call_event", "call_session", "dead_letter")}


def deleted(counts: PurgeCounts) -> dict[str, int]:
    return {
        "cdr": counts.cdr,
        "call_event": counts.call_event,
        "call_session": counts.call_session,
        "dead_letter": counts.dead_letter,
    }


def test_the_world_holds_what_it_says(engine: Engine, world: list[Kept]) -> None:
    assert contents(engine) == sum((thing.rows for thing in world), Counter())


def test_purge_deletes_exactly_the_old_rows_in_batches(engine: Engine, world: list[Kept]) -> None:
    before = contents(engine)
    counts = purge(engine, CUT, batch=2)
    after = contents(engine)
    assert after == remaining(world)
    assert deleted(counts) == per_table(before - after)
    # Two rows a batch: at least a batch per two CDRs and per two dead letters.
    gone = per_table(before - after)
    assert counts.batches >= -(-gone["cdr"] // 2) - (-gone["dead_letter"] // 2)


def test_a_call_and_its_cdr_go_together(engine: Engine, world: list[Kept]) -> None:
    purge(engine, CUT, batch=3)
    left = contents(engine)
    named = {(thing.team, thing.name): thing.rows for thing in world}
    for team in TEAMS:
        # The hangup received after the cut went with its old call's CDR and session...
        assert not named[(team, "late")] & left
        # ...and the events received before the cut stayed with their recent call's CDR.
        assert named[(team, "early")] <= left
        # A call without a CDR went only where all its events were older than the cut.
        assert named[(team, "mixed")] <= left
        assert not (named[(team, "internal")] + named[(team, "leg")]) & left
    assert left == remaining(world)


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(
    engine: Engine, world: list[Kept]
) -> None:
    before = contents(engine)
    dry = purge(engine, CUT, batch=2, dry_run=True)
    assert contents(engine) == before
    real = purge(engine, CUT, batch=5)
    assert deleted(dry) == deleted(real) == per_table(before - remaining(world))


def test_one_teams_purge_leaves_the_others(engine: Engine, world: list[Kept]) -> None:
    before = contents(engine)
    dry = purge(engine, CUT, team="team1", batch=4, dry_run=True)
    counts = purge(engine, CUT, team="team1", batch=4)
    assert contents(engine) == remaining(world, team="team1")
    assert deleted(dry) == deleted(counts) == per_table(before - contents(engine))
    # Again: the kept call's old events are read, and nothing is left to delete.
    assert set(deleted(purge(engine, CUT, team="team1")).values()) == {0}


def test_purge_on_the_command_line(backend: Backend, engine: Engine, world: list[Kept]) -> None:
    before = contents(engine)
    arguments = ["--db", backend.url, "--older-than", "30", "--team", "team2"]
    dry = CliRunner().invoke(purge_command, [*arguments, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "would delete of team team2" in dry.output
    assert contents(engine) == before
    real = CliRunner().invoke(purge_command, arguments, catch_exceptions=False)
    assert real.exit_code == 0, real.output
    gone = per_table(before - contents(engine))
    assert f"{gone['cdr']} CDRs, {gone['call_event']} journal rows" in dry.output
    assert f"deleted of team team2, older than {CUT:%Y-%m-%d}" in real.output
    assert f"{gone['call_session']} call sessions, {gone['dead_letter']} dead letters" in dry.output
    assert contents(engine) == remaining(world, team="team2")
