"""The `cdrlog` command, as a script would use it (SQLite, which the CLI migrates itself)."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cdrlog.cli.main import cli
from cdrlog.service.ingest import Ingestor
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.deadletters import DeadLetter
from cdrlog.web.app import create_app

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def calls(sqlite_url: str) -> list[GeneratedCall]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    generated = generate_calls(random.Random(9), START, calls=30, teams=2, agents=3)
    with TestClient(create_app(Settings(database_url=sqlite_url), engine)) as client:
        # asterCC's events name no team: each team's go to its own push URL.
        for team in sorted({call.team for call in generated}):
            events = [
                event
                for call in generated
                if call.team == team
                for event in (*call.events, *call.agent_events)
            ]
            assert client.post(f"/astercc/{team}/events", json=events).status_code == 200
    engine.dispose()
    return generated


def run(*arguments: str) -> str:
    result = CliRunner().invoke(cli, list(arguments), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_export_writes_exactly_the_filtered_cdrs_as_csv(
    sqlite_url: str, calls: list[GeneratedCall]
) -> None:
    output = run("export", "--db", sqlite_url, "--team", "team2", "--tz", "Asia/Shanghai")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert {r["diallogid"] for r in rows} == {
        c.expected.diallogid for c in calls if c.expected.team == "team2"
    }
    assert all(r["starttime"].endswith("+08:00") for r in rows)
    starts = [r["starttime"] for r in rows]
    assert starts == sorted(starts)


def test_export_as_json_lines_honours_the_time_range(
    sqlite_url: str, calls: list[GeneratedCall]
) -> None:
    cut = sorted(c.expected.starttime for c in calls)[10]
    output = run("export", "--db", sqlite_url, "--format", "jsonl", "--from", cut.isoformat())
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == sum(c.expected.starttime >= cut for c in calls)


def test_stats_by_agent_as_json(sqlite_url: str, calls: list[GeneratedCall]) -> None:
    rows = json.loads(run("stats", "--db", sqlite_url, "--by", "agent", "--json"))
    assert sum(row["calls"] for row in rows) == len(calls)
    assert {(row["team"], row["group"]) for row in rows} == {
        (c.expected.team, c.expected.agentno) for c in calls
    }


def test_stats_table_names_every_day(sqlite_url: str, calls: list[GeneratedCall]) -> None:
    output = run("stats", "--db", sqlite_url, "--by", "day", "--tz", "Asia/Shanghai")
    assert "2026-11-20" in output


def test_agents_set_then_list(sqlite_url: str) -> None:
    run("agents", "set", "--db", sqlite_url, "team1", "1001", "8001")
    listed = run("agents", "list", "--db", sqlite_url)
    assert "1001" in listed
    assert "8001" in listed
    assert "logged out" in listed


def test_agents_list_shows_each_state_and_how_long(sqlite_url: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with TestClient(create_app(Settings(database_url=sqlite_url), engine)) as client:
        assert client.post("/astercc/events", json=agent_day(now)).status_code == 200
    engine.dispose()

    listed = run("agents", "list", "--db", sqlite_url, "--team", "team1")

    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in listed.splitlines()]
    by_agent = {row[1]: row for row in rows if row}
    paused_at = (now - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    assert set(by_agent) == {"1001", "1002", "1003"}
    assert by_agent["1001"][:5] == ["team1", "1001", "8001", "100", "available"]
    assert by_agent["1001"][6] in ("2h 00m", "2h 01m")
    assert by_agent["1002"][4:6] == ["paused", paused_at]
    assert by_agent["1003"][4] == "wrap-up"


def agent_day(now: datetime) -> list[dict[str, str]]:
    def event(team: str, agentno: str, name: str, minutes_ago: int, **extra: str) -> dict[str, str]:
        moment = (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")
        fields = {"orgidentity": team, "agentno": agentno, "event": name, "eventTime": moment}
        return fields | extra

    return [
        event("team1", "1001", "login", 120, agentphone="8001", AgentGroupId="100"),
        event("team1", "1002", "login", 60, agentphone="8002"),
        event("team1", "1002", "paused", 5),
        event("team1", "1003", "hangupacw", 1),
        event("team2", "2001", "login", 1),
    ]


def test_rejected_list_and_retry(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    body = (
        b"sessionid=s1&calltype=dialin&source=CALLER&event=ringing"
        b"&activenum=13800138000&eventTime=2026-11-20+08:00:00"
    )
    kept = DeadLetter("/astercc/team1/events", "team1", None, None, body, False, {"a": "b"})
    letter_id = Ingestor(engine).dead_letter(kept)
    engine.dispose()
    assert str(letter_id) in run("rejected", "list", "--db", sqlite_url)
    assert "resolved" in run("rejected", "retry", "--db", sqlite_url, str(letter_id))
    again = CliRunner().invoke(cli, ["rejected", "retry", "--db", sqlite_url, str(letter_id)])
    assert again.exit_code == 1
    assert "already resolved" in again.output


def test_db_upgrade_is_idempotent(sqlite_url: str) -> None:
    assert "current" in run("db", "upgrade", "--db", sqlite_url)
    assert "current" in run("db", "upgrade", "--db", sqlite_url)


def test_a_bad_time_zone_is_a_usage_error(sqlite_url: str) -> None:
    result = CliRunner().invoke(cli, ["stats", "--db", sqlite_url, "--tz", "Mars/Base"])
    assert result.exit_code == 2
    assert "IANA" in result.output
