"""`cdrlog agents report`: the figures of GET /api/v1/agents/report as a table."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from cdrlog.cli.agents import clock_time
from cdrlog.cli.main import cli
from cdrlog.service.settings import Settings
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app

# Long past, so that the clock of the run, whenever it is, is after the whole range.
DAY = "2024-03-04"


def agent_event(team: str, agentno: str, event: str, clock: str, **extra: str) -> dict[str, str]:
    return {
        "orgidentity": team,
        "event": event,
        "agentno": agentno,
        "eventTime": f"{DAY} {clock}",
        **extra,
    }


CALL = {
    "orgidentity": "team1",
    "sessionid": "c1",
    "calltype": "dialout",
    "source": "CALLEE",
    "agentno": "1001",
}
EVENTS = [
    agent_event("team1", "1001", "login", "07:30:00", agentphone="8001", AgentGroupId="100"),
    agent_event("team1", "1001", "paused", "08:30:00"),
    agent_event("team1", "1001", "nopaused", "08:45:00"),
    agent_event("team1", "1001", "hangupacw", "09:00:00"),
    agent_event("team1", "1001", "acwstop", "09:10:00"),
    agent_event("team1", "1001", "logoff", "09:30:00"),
    CALL | {"event": "ringing", "eventTime": f"{DAY} 08:50:00", "activenum": "555"},
    CALL | {"event": "answer", "eventTime": f"{DAY} 08:50:10"},
    CALL | {"event": "hangup", "eventTime": f"{DAY} 08:59:10", "hangupcause": "16"},
    agent_event("team1", "1002", "login", "09:00:00", agentphone="8002", AgentGroupId="200"),
    agent_event("team2", "2001", "login", "08:00:00", agentphone="9001", AgentGroupId="300"),
]


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with TestClient(create_app(Settings(database_url=sqlite_url), engine)) as client:
        assert client.post("/astercc/events", json=EVENTS).status_code == 200
    engine.dispose()
    return sqlite_url


def invoke(*arguments: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["agents", "report", *arguments])


def rows(output: str) -> dict[str, list[str]]:
    """The table's cells by agent number."""
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().split("│")[1:-1]]
        if len(cells) > 1 and cells[1].isdigit():
            found[cells[1]] = cells
    return found


def test_each_agents_figures_as_a_table(database: str) -> None:
    result = invoke(
        "--db",
        database,
        "--since",
        f"{DAY}T08:00:00",
        "--until",
        f"{DAY}T09:45:00",
        "--team",
        "team1",
    )

    assert result.exit_code == 0, result.output
    assert "2024-03-04 08:00:00+0000 to 2024-03-04 09:45:00+0000" in result.output
    found = rows(result.output)
    assert found["1001"] == [
        "team1", "1001", "100", "1:30:00", "0:15:00", "0:10:00", "0:09:00", "1", "25.3%", "0:19:00"
    ]  # fmt: skip
    assert found["1002"] == [
        "team1", "1002", "200", "0:45:00", "0:00:00", "0:00:00", "0:00:00", "0", "0.0%", ""
    ]  # fmt: skip
    assert "2001" not in found


def test_a_queue_and_a_zone(database: str) -> None:
    result = invoke(
        "--db", database, "--since", f"{DAY} 16:00", "--until", f"{DAY} 17:45",
        "--tz", "Asia/Shanghai", "--queue", "100",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    found = rows(result.output)
    assert list(found) == ["1001"]
    assert found["1001"][3] == "1:30:00"


def test_an_empty_range_is_a_usage_error(database: str) -> None:
    result = invoke("--db", database, "--since", f"{DAY}T10:00", "--until", f"{DAY}T09:00")

    assert result.exit_code == 2
    assert "before" in result.output


def test_durations_read_as_a_clock() -> None:
    shown = [clock_time(seconds) for seconds in (0, 59, 3600, 90061)]
    assert shown == ["0:00:00", "0:00:59", "1:00:00", "25:01:01"]
