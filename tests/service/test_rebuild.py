"""rebuild: a wrong PBX time zone fixed after the fact, in place or as a dry run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlalchemy import Engine, select

from cdrlog.cli.main import cli
from cdrlog.core.accepted import Accepted
from cdrlog.core.events import Rejection, fingerprint, parse_event
from cdrlog.service.ingest import Ingestor
from cdrlog.service.rebuild import Selection, rebuild
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store.tables import cdr
from conftest import Backend

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
NOW = START + timedelta(days=1)


def ingest(engine: Engine, calls: list[GeneratedCall], zone: ZoneInfo) -> Ingestor:
    """Store the calls, the agents' events that ride with them included, as a receiver
    set to `zone` would have (each at its team's push URL)."""
    ingestor = Ingestor(engine, clock=lambda: NOW)
    batch = []
    for call in calls:
        for fields in (*call.events, *call.agent_events):
            event = parse_event(fields, url_team=call.team, pbx_timezone=zone)
            assert not isinstance(event, Rejection)
            batch.append(Accepted(event, fields, fingerprint(event.team, fields)))
    ingestor.ingest_many(batch)
    return ingestor


def starts(engine: Engine) -> dict[str, datetime]:
    with engine.connect() as connection:
        rows = connection.execute(select(cdr.c.diallogid, cdr.c.starttime))
        return {row.diallogid: row.starttime for row in rows}


def calls_in_shanghai_time() -> list[GeneratedCall]:
    """Calls whose eventTime text is Shanghai wall time (what the PBX really wrote)."""
    return generate_calls(random.Random(3), START, calls=25, teams=2, agents=3)


def test_fixing_the_pbx_zone_moves_every_cdr_by_the_offset(engine: Engine) -> None:
    calls = calls_in_shanghai_time()
    ingestor = ingest(engine, calls, ZoneInfo("UTC"))
    wrong = starts(engine)

    summary = rebuild(ingestor, SHANGHAI, Selection())

    fixed = starts(engine)
    assert summary.calls == len(calls)
    assert summary.cdrs_changed == len(calls)
    assert summary.events_reparsed == sum(len(c.events) + len(c.agent_events) for c in calls)
    assert {k: wrong[k] - fixed[k] for k in wrong} == dict.fromkeys(wrong, timedelta(hours=8))
    again = rebuild(ingestor, SHANGHAI, Selection())
    assert (again.events_reparsed, again.cdrs_changed) == (0, 0)


def test_a_dry_run_reports_the_same_and_changes_nothing(engine: Engine) -> None:
    calls = calls_in_shanghai_time()
    ingestor = ingest(engine, calls, ZoneInfo("UTC"))
    before = starts(engine)

    dry = rebuild(ingestor, SHANGHAI, Selection(), dry_run=True)

    assert starts(engine) == before
    assert dry.cdrs_changed == len(calls)
    _, old, new = dry.changes[0]
    assert old is not None
    assert old.starttime - new.starttime == timedelta(hours=8)


def test_only_the_team_asked_for_is_rebuilt(engine: Engine) -> None:
    calls = calls_in_shanghai_time()
    ingestor = ingest(engine, calls, ZoneInfo("UTC"))
    before = starts(engine)

    summary = rebuild(ingestor, SHANGHAI, Selection(team="team1"))

    after = starts(engine)
    team1 = {c.expected.diallogid for c in calls if c.expected.team == "team1"}
    assert summary.calls == len(team1)
    assert {k for k in before if before[k] != after[k]} == team1


def test_the_command_line_rebuild(backend: Backend, engine: Engine) -> None:
    calls = calls_in_shanghai_time()
    ingest(engine, calls, ZoneInfo("UTC"))
    before = starts(engine)
    arguments = ["rebuild", "--db", backend.url, "--pbx-timezone", "Asia/Shanghai"]

    dry = CliRunner().invoke(cli, [*arguments, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert f"would change {len(calls)} CDRs" in dry.output
    assert "starttime" in dry.output
    assert starts(engine) == before

    done = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert all(before[k] - v == timedelta(hours=8) for k, v in starts(engine).items())
