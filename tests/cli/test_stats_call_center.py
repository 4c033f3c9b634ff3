"""`cdrlog stats`' call-center figures and terms: the API's, by the same names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cdrlog.cli.main import cli
from cdrlog.cli.read import CALL_CENTER
from cdrlog.core.hours import BusinessHours
from cdrlog.core.report import GroupBy, StatsTerms
from cdrlog.store.database import make_engine, upgrade
from support.callcenter import recount, same_figures, store

START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def _row(n: int) -> dict[str, object]:
    start = START + timedelta(minutes=41 * n)
    answered = n % 3 != 0
    return {
        "orgidentity": "team1",
        "calltype": "dialin" if n % 4 else "dialout",
        "target": "x",
        "agentno": "1001",
        "starttime": start,
        "answertime": start + timedelta(seconds=n % 30) if answered else None,
        "endtime": start + timedelta(seconds=n % 30 + 60),
        "billsec": 60 if answered else 0,
        "disposition": "ANSWER" if answered else "NOANSWER",
        "status": "closed",
        "agent_group": ("100", "200", None)[n % 3],
        "hold_seconds": n % 5,
        "transferred_to": "8002" if n % 7 == 0 else None,
    }


@pytest.fixture
def rows(sqlite_url: str) -> list[dict[str, object]]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    made = [_row(n) for n in range(60)]
    store(engine, made)
    engine.dispose()
    return made


def invoke(*arguments: str, columns: int = 80) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["stats", *arguments])
    return result.exit_code, result.output


def test_stats_by_queue_as_json_is_the_recount(
    sqlite_url: str, rows: list[dict[str, object]]
) -> None:
    terms = ("--service-level-seconds", "10", "--short-abandon-seconds", "3")
    business = ("--business-hours", "09:00-18:00", "--business-days", "mon-fri")
    code, output = invoke(
        "--db", sqlite_url, "--group-by", "queue", "--tz", "Asia/Shanghai", *terms, *business
    )
    assert code == 0, output
    code, output = invoke(
        "--db", sqlite_url, "--by", "queue", "--tz", "Asia/Shanghai", *terms, *business, "--json"
    )
    assert code == 0, output
    got = {(row["team"], row["group"]): row for row in json.loads(output)}
    asked = StatsTerms(10, 3, BusinessHours.parse("09:00-18:00", "mon-fri"))
    expected = recount(rows, GroupBy.QUEUE, ZoneInfo("Asia/Shanghai"), asked)
    assert set(got) == set(expected) == {("team1", "100"), ("team1", "200"), ("team1", "")}
    for key, figures in expected.items():
        assert same_figures(got[key], figures), key


@pytest.mark.parametrize("by", ["queue", "weekday_hour", "hour"])
def test_the_call_center_table_fits_80_columns(
    sqlite_url: str, rows: list[dict[str, object]], by: str
) -> None:
    code, output = invoke("--db", sqlite_url, "--by", by, "--tz", "Asia/Shanghai")
    assert code == 0, output
    assert all(len(line) <= 80 for line in output.splitlines())
    assert "…" not in output
    for heading in CALL_CENTER:
        assert heading in output
    if by == "weekday_hour":
        assert "fri 09" in output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--business-hours", "20:00-08:00"),
        ("--business-days", "mon-fry"),
        ("--service-level-seconds", "-1"),
        ("--short-abandon-seconds", "x"),
    ],
)
def test_a_bad_term_names_its_option(sqlite_url: str, option: str, value: str) -> None:
    code, output = invoke("--db", sqlite_url, option, value)
    assert code == 2
    assert option in output
