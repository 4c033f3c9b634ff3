"""What the commands print: the API's filters on `export` and `stats`, tables that fit
the terminal, listings that say when they are cut, and `--help` that imports no command."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cdrlog.cli import ops
from cdrlog.cli.main import COMMANDS, cli
from cdrlog.core.rules import Disposition
from cdrlog.service import replay
from cdrlog.service.ingest import Ingestor
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store import purge
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.deadletters import DeadLetter
from cdrlog.web.app import create_app

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def calls(sqlite_url: str) -> list[GeneratedCall]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    generated = generate_calls(random.Random(5), START, calls=40, teams=1, agents=3)
    with TestClient(create_app(Settings(database_url=sqlite_url), engine)) as client:
        events = [e for call in generated for e in (*call.events, *call.agent_events)]
        assert client.post("/astercc/team1/events", json=events).status_code == 200
    engine.dispose()
    return generated


def run(*arguments: str, columns: int = 80) -> str:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


def exported(sqlite_url: str, *filters: str) -> set[str]:
    output = run("export", "--db", sqlite_url, *filters)
    return {row["diallogid"] for row in csv.DictReader(io.StringIO(output))}


def expected(calls: list[GeneratedCall], keep: object) -> set[str]:
    assert callable(keep)
    return {c.expected.diallogid for c in calls if keep(c.expected)}


def test_export_takes_the_filters_of_the_api(sqlite_url: str, calls: list[GeneratedCall]) -> None:
    answered = expected(calls, lambda cdr: cdr.disposition == Disposition.ANSWER)
    assert 0 < len(answered) < len(calls)
    assert exported(sqlite_url, "--disposition", "answer") == answered
    busy_or_not = expected(calls, lambda cdr: cdr.disposition != Disposition.ANSWER)
    assert exported(sqlite_url, "--disposition", "NOANSWER,BUSY,FAILED,CONGESTION") == busy_or_not
    inbound = expected(calls, lambda cdr: cdr.calltype == "dialin")
    assert exported(sqlite_url, "--calltype", "DIALIN") == inbound
    long = expected(calls, lambda cdr: (cdr.billsec or 0) >= 60)
    assert exported(sqlite_url, "--min-billsec", "60") == long
    some = calls[0].expected
    assert some.dst
    assert some.diallogid in exported(sqlite_url, "--dst", some.dst)
    assert some.diallogid in exported(sqlite_url, "--number", some.dst[:3] + "*")
    agent = some.agentno or ""
    assert exported(sqlite_url, "--agentno", agent) == exported(sqlite_url, "--agent", agent)
    assert exported(sqlite_url, "--status", "closed") == expected(
        calls, lambda cdr: cdr.status == "closed"
    )


def test_an_export_cut_by_limit_says_so(sqlite_url: str, calls: list[GeneratedCall]) -> None:
    result = CliRunner().invoke(cli, ["export", "--db", sqlite_url, "--limit", "5"])
    assert result.exit_code == 0
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 5
    assert f"wrote 5 of {len(calls)} CDRs (--limit 5)" in result.stderr


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("by", ["hour", "agent", "day", "team"])
def test_stats_tables_fit_the_terminal_with_whole_headings(
    sqlite_url: str, calls: list[GeneratedCall], columns: int, by: str
) -> None:
    table = run("stats", "--db", sqlite_url, "--by", by, "--tz", "Asia/Shanghai", columns=columns)
    lines = table.splitlines()
    assert all(len(line) <= columns for line in lines)
    assert "…" not in table
    for heading in ("calls", "ASR", "ACD s", "talk s", "ring s"):
        assert heading in lines[0]
    if by == "hour":
        assert "2026-11-20T16:00+08:00" in table


def test_stats_takes_the_filters_too(sqlite_url: str, calls: list[GeneratedCall]) -> None:
    rows = json.loads(
        run("stats", "--db", sqlite_url, "--by", "team", "--calltype", "dialin", "--json")
    )
    assert sum(row["calls"] for row in rows) == sum(c.expected.calltype == "dialin" for c in calls)


def test_rebuild_says_how_many_changes_it_shows(
    sqlite_url: str, calls: list[GeneratedCall]
) -> None:
    dry = run("rebuild", "--db", sqlite_url, "--dry-run", "--pbx-timezone", "Asia/Shanghai")
    changed = [line for line in dry.splitlines() if line.startswith("  team1/")]
    assert len(changed) == 5
    assert "(showing 5 of " in dry


def test_rejected_list_says_when_it_is_cut_and_retry_reads(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    ingestor = Ingestor(engine)
    bad = b"sessionid=s1&calltype=dialin&source=CALLER&event=ringing&eventTime=never"
    ids = [
        ingestor.dead_letter(DeadLetter("/astercc/t1/events", "t1", None, None, bad, False, {}))
        for _ in range(3)
    ]
    engine.dispose()
    assert "showing the newest 2; --limit N for more" in run(
        "rejected", "list", "--db", sqlite_url, "--limit", "2"
    )
    assert "--limit N" not in run("rejected", "list", "--db", sqlite_url, "--limit", "3")
    retried = CliRunner().invoke(cli, ["rejected", "retry", "--db", sqlite_url, str(ids[0])])
    assert retried.exit_code == 1
    line = retried.output.strip()
    assert line.startswith(f"{ids[0]}: still refused: item 0: ")
    assert "eventTime" in line
    assert "{" not in line


def test_purge_without_a_terminal_prints_only_its_summary(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    out = run("purge", "--db", sqlite_url, "--older-than", "1")
    assert out.startswith("cdrlog purge: deleted")
    assert len(out.splitlines()) == 1


def test_the_defaults_repeated_for_help_are_those_of_the_service() -> None:
    assert ops.REPLAY_BATCH == replay.DEFAULT_BATCH
    assert ops.PURGE_BATCH == purge.DEFAULT_BATCH


def test_help_imports_no_command_and_lists_every_one() -> None:
    probe = (
        "import sys\n"
        "from cdrlog.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'alembic', 'pydantic', 'fastapi', 'uvicorn', 'rich', 'httpx')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('cdrlog.cli.') and m not in ('cdrlog.cli.main', 'cdrlog.cli.group')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    *listing, imported = done.stdout.strip().splitlines()
    assert imported == "[]"
    for name, lazy in COMMANDS.items():
        assert any(line.split()[:1] == [name] for line in listing), name
        assert lazy.help in " ".join(" ".join(listing).split())


def test_every_registered_command_loads() -> None:
    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
