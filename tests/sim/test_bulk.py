"""The bulk loader, on every backend: exactly N calls, each CDR the fold of its journal,
rows as the receiver itself would store them, and the read API working on them."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import Counter, defaultdict
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cdrlog.cli.bulk import bulk_load
from cdrlog.cli.main import cli
from cdrlog.core.accepted import Accepted
from cdrlog.core.cdr import fold_call
from cdrlog.core.events import AgentEvent, CallEvent, fingerprint, parse_event
from cdrlog.service.ingest import Ingestor
from cdrlog.sim.bulk import LoadSummary, calls_of, load
from cdrlog.sim.bulk_plan import plan, slots
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.tables import (
    agent,
    call_event,
    call_event_from_row,
    call_session,
    cdr,
    cdr_from_row,
)

END = datetime(2024, 3, 11, tzinfo=UTC)  # a Monday, 00:00 UTC
CDRS = 300
TEAMS = 2
AGENTS = 4


def load_into(engine: Engine, cdrs: int = CDRS, **options: Any) -> LoadSummary:
    chosen: dict[str, Any] = {"seed": 7, "days": 3, "teams": TEAMS, "agents": AGENTS}
    chosen |= {"progress": False, "end": END, "batch": 64, "workers": 0} | options
    return load(engine, cdrs, **chosen)


@pytest.fixture
def loaded(engine: Engine) -> LoadSummary:
    return load_into(engine)


def scalar(engine: Engine, query: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def cdr_table(engine: Engine) -> list[tuple[Any, ...]]:
    """Every CDR's fold-determined values, without ids and bookkeeping times."""
    with engine.connect() as connection:
        rows = connection.execute(select(cdr).order_by(cdr.c.orgidentity, cdr.c.diallogid))
        return [astuple(cdr_from_row(row)) for row in rows]


def test_loads_exactly_n_calls_each_once(engine: Engine, loaded: LoadSummary) -> None:
    assert (loaded.cdrs, loaded.sessions, loaded.agents) == (CDRS, CDRS, TEAMS * AGENTS)
    assert scalar(engine, select(func.count()).select_from(cdr)) == CDRS
    assert scalar(engine, select(func.count()).select_from(call_session)) == CDRS
    assert scalar(engine, select(func.count()).select_from(call_event)) == loaded.events
    assert scalar(engine, select(func.count()).select_from(agent)) == TEAMS * AGENTS
    with engine.connect() as connection:
        calls = connection.execute(select(cdr.c.orgidentity, cdr.c.diallogid)).all()
        first = connection.execute(select(func.min(cdr.c.starttime))).scalar_one()
    assert len(set(calls)) == CDRS
    assert first >= END - timedelta(days=3)
    # Every event of every call journaled once, and the agent events riding with them:
    # five to fifteen per call in asterCC's shape.
    work = plan(
        CDRS, seed=7, start=END - timedelta(days=3), days=3, teams=TEAMS, agents=AGENTS, size=64
    )
    made = [call for batch in work for call in calls_of(batch)]
    events = [len(call.events) for call in made]
    assert len(events) == CDRS
    riders = sum(len(call.agent_events) for call in made)
    assert riders > 0
    assert loaded.events == sum(events) + riders
    with engine.connect() as connection:
        agent_rows = select(func.count()).where(call_event.c.sessionid.is_(None))
        assert connection.execute(agent_rows).scalar_one() == riders
    assert 5 <= min(events) <= max(events) <= 15


def test_each_cdr_is_the_fold_of_its_journal(engine: Engine, loaded: LoadSummary) -> None:
    journal: defaultdict[tuple[str, str], list[CallEvent]] = defaultdict(list)
    with engine.connect() as connection:
        for row in connection.execute(select(call_event).where(call_event.c.sessionid.isnot(None))):
            journal[row.orgidentity, row.sessionid].append(call_event_from_row(row))
        phones = {(r.orgidentity, r.agentno): r.phone for r in connection.execute(select(agent))}
        stored = [cdr_from_row(row) for row in connection.execute(select(cdr))]
    assert len(journal) == CDRS
    for record in stored:
        events = journal[record.team, record.diallogid]
        registry = {no: phone for (team, no), phone in phones.items() if team == record.team}
        assert fold_call(events, registry) == record


def test_rows_are_those_the_receiver_stores(tmp_path: Path) -> None:
    """Replaying the journal's own fields through the Ingestor gives the same journal
    columns and the same CDRs as the bulk loader wrote."""
    bulk, replayed = (make_engine(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    for engine in (bulk, replayed):
        upgrade(engine)
    load_into(bulk, 40, teams=1)
    ingestor = Ingestor(replayed, clock=lambda: END)
    with bulk.connect() as connection:
        query = select(call_event.c.orgidentity, call_event.c.fields).order_by(call_event.c.id)
        for row in connection.execute(query):
            fields = json.loads(row.fields)
            # asterCC's events name no team: the push URL of the row's team does.
            event = parse_event(fields, url_team=row.orgidentity, pbx_timezone=ZoneInfo("UTC"))
            assert isinstance(event, CallEvent | AgentEvent)
            ingestor.ingest(Accepted(event, fields, fingerprint(event.team, fields)))
    assert cdr_table(replayed) == cdr_table(bulk)
    assert journal(replayed) == journal(bulk)
    for engine in (bulk, replayed):
        engine.dispose()


def journal(engine: Engine) -> list[tuple[Any, ...]]:
    kept = [c for c in call_event.c if c.name not in ("id", "received_at")]
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(*kept).order_by(*kept[:2]))]


def test_worker_processes_write_the_same_rows(tmp_path: Path) -> None:
    alone, helped = (make_engine(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    for engine in (alone, helped):
        upgrade(engine)
    load_into(alone, 120, batch=20, workers=0)
    load_into(helped, 120, batch=20, workers=1)
    assert cdr_table(helped) == cdr_table(alone)
    assert len(cdr_table(alone)) == 120
    for engine in (alone, helped):
        engine.dispose()


def test_calls_follow_a_working_week() -> None:
    monday = datetime(2024, 3, 4, tzinfo=UTC)
    planned = slots(random.Random(1), 20_000, monday, 7, 500)
    assert sum(slot.calls for slot in planned) == 20_000
    assert max(slot.calls for slot in planned) <= 500
    by_hour: Counter[int] = Counter()
    by_day: Counter[int] = Counter()
    for slot in planned:
        by_hour[slot.start.hour] += slot.calls
        by_day[slot.start.weekday()] += slot.calls
    assert by_hour[10] > 10 * by_hour[3]
    assert by_day[1] > 3 * by_day[6]


def test_the_read_api_works_on_loaded_calls(client: TestClient, loaded: LoadSummary) -> None:
    first = client.get("/api/v1/cdrs", params={"team": "team1", "limit": "50"}).json()
    seen = [row["id"] for row in first["cdrs"]]
    following = first["next_cursor"]
    while following:
        page = client.get("/api/v1/cdrs", params={"team": "team1", "cursor": following}).json()
        seen += [row["id"] for row in page["cdrs"]]
        following = page["next_cursor"]
    assert len(seen) == len(set(seen)) == first["total"]
    assert 0 < first["total"] < CDRS
    for group_by in ("agent", "hour"):
        stats = client.get("/api/v1/stats", params={"group_by": group_by}).json()
        assert sum(row["calls"] for row in stats["rows"]) == CDRS
    exported = client.get("/api/v1/cdrs", params={"format": "csv"}).text
    assert len(list(csv.reader(io.StringIO(exported)))) == CDRS + 1
    detail = client.get(f"/api/v1/cdrs/{seen[0]}").json()
    assert len(detail["events"]) >= 5
    assert detail["events"][0]["event"] in ("ringing", "incoming")  # a call begins so


def test_the_command_migrates_and_loads(sqlite_url: str) -> None:
    arguments = ["--db", sqlite_url, "--cdrs", "50", "--days", "2", "--teams", "1"]
    result = CliRunner().invoke(cli, ["bulk-load", *arguments, "--agents", "3", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "loaded 50 CDRs" in result.output
    assert "rows/s" in result.output
    engine = make_engine(sqlite_url)
    assert scalar(engine, select(func.count()).select_from(cdr)) == 50
    engine.dispose()


def test_the_command_refuses_a_seed_already_loaded(sqlite_url: str) -> None:
    arguments = ["--db", sqlite_url, "--cdrs", "20", "--days", "1", "--teams", "1"]
    assert CliRunner().invoke(bulk_load, arguments).exit_code == 0
    again = CliRunner().invoke(bulk_load, [*arguments, "--days", "2"])
    assert again.exit_code == 1
    assert "already holds calls of seed 1" in again.output


@pytest.mark.parametrize("option", [{"days": 0}, {"teams": 0}, {"batch": 0}])
def test_nonsense_is_refused(sqlite_url: str, option: dict[str, int]) -> None:
    engine = make_engine(sqlite_url)
    with pytest.raises(ValueError, match="at least"):
        load_into(engine, **option)
    engine.dispose()
