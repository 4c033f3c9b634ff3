"""Call flows as data: each `scenarios/*.txt` is one call, its events as asterCC pushes them,
and the CDR it must give.

A file has three parts (lines starting with `#` are comments):

    calltype:  dialout            the call's header: sent with every event
    sessionid: 1767574800.42
    team:      acme               the team of the push URL
    timezone:  Asia/Shanghai      the PBX zone for local eventTimes (default UTC)
    registry:  1001=8001          agent number -> phone, as logins left it (or -)

    eventTime            source  event    activenum    agentno  agentphone  hangupcause
    2026-01-05 09:00:05  CALLEE  ringing  13800138000  1001     8001        -

    expect:                       or `expect: none` when the call makes no CDR
    disposition: ANSWER
    ...

Table cells are separated by whitespace, `-` is an absent field; eventTime may contain
the one space of `YYYY-MM-DD HH:MM:SS`. Expected times carry their offset; `-` is None.
Each event goes through `parse_event`, so the scenario exercises the wire format too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cdrlog.cdr import Cdr, fold_call
from cdrlog.events import CallEvent, parse_event

SCENARIOS = Path(__file__).parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.txt"))
HEADER_KEYS = frozenset({"calltype", "sessionid", "team", "timezone", "registry"})
# Every scenario with a CDR states all of these; team, diallogid and calltype are
# checked against the header.
EXPECTED_COLUMNS = frozenset(
    {
        "target",
        "src",
        "dst",
        "agentno",
        "starttime",
        "answertime",
        "endtime",
        "duration",
        "billsec",
        "disposition",
        "status",
        "did",
        "agent_group",
        "hold_seconds",
        "transferred_to",
    }
)
ROW = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\S*|\S+)\s+(.*)")
Value = str | int | datetime | None


@dataclass(frozen=True)
class Scenario:
    header: Mapping[str, str]
    rows: list[dict[str, str]]
    expect: dict[str, Value] | None

    @property
    def team(self) -> str:
        return self.header["team"]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.header.get("timezone", "UTC"))

    @property
    def registry(self) -> dict[str, str]:
        text = self.header.get("registry", "-")
        if text == "-":
            return {}
        return dict(pair.split("=", 1) for pair in text.split())


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, f"expected time {text!r} needs an offset"
    return moment


CONVERT: Mapping[str, Callable[[str], Value]] = {
    "starttime": _time,
    "answertime": _time,
    "endtime": _time,
    "duration": int,
    "billsec": int,
    "hold_seconds": int,
}


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and line[:1] != "#"]


def load(path: Path) -> Scenario:
    lines = _lines(path)
    table = next(i for i, line in enumerate(lines) if line.split()[0] == "eventTime")
    verdict = next(i for i, line in enumerate(lines) if line.startswith("expect:"))
    header = dict(_pair(line) for line in lines[:table])
    assert set(header) <= HEADER_KEYS, f"unknown header keys {set(header) - HEADER_KEYS}"
    columns = lines[table].split()
    rows = [_row(columns, line) for line in lines[table + 1 : verdict]]
    if lines[verdict].removeprefix("expect:").strip() == "none":
        assert verdict == len(lines) - 1, "nothing may follow `expect: none`"
        return Scenario(header, rows, None)
    expect: dict[str, Value] = {}
    for line in lines[verdict + 1 :]:
        name, text = _pair(line)
        expect[name] = None if text == "-" else CONVERT.get(name, str)(text)
    return Scenario(header, rows, expect)


def _pair(line: str) -> tuple[str, str]:
    name, separator, value = line.partition(":")
    assert separator, f"expected `key: value`, got {line!r}"
    return name.strip(), value.strip()


def _row(columns: list[str], line: str) -> dict[str, str]:
    match = ROW.fullmatch(line)
    assert match is not None, f"not an event row: {line!r}"
    cells = [match[1], *match[2].split()]
    assert len(cells) == len(columns), f"{len(columns)} columns expected in {line!r}"
    return {name: cell for name, cell in zip(columns, cells, strict=True) if cell != "-"}


def wire_fields(scenario: Scenario, row: dict[str, str]) -> dict[str, str]:
    """One push: the header's call fields plus the row's own."""
    return {
        "sessionid": scenario.header["sessionid"],
        "calltype": scenario.header["calltype"],
        **row,
    }


def call_events(scenario: Scenario) -> list[CallEvent]:
    events = []
    for row in scenario.rows:
        event = parse_event(
            wire_fields(scenario, row), url_team=scenario.team, pbx_timezone=scenario.zone
        )
        assert isinstance(event, CallEvent), f"{row}: {event}"
        events.append(event)
    return events


def test_there_are_scenarios() -> None:
    assert len(FILES) >= 13


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_scenario(path: Path) -> None:
    scenario = load(path)
    cdr = fold_call(call_events(scenario), scenario.registry)
    if scenario.expect is None:
        assert cdr is None
        return
    assert cdr is not None, "the events make no CDR"
    missing = EXPECTED_COLUMNS - set(scenario.expect)
    assert not missing, f"the scenario must state {sorted(missing)}"
    unknown = set(scenario.expect) - {field.name for field in fields(Cdr)}
    assert not unknown, f"not CDR columns: {sorted(unknown)}"
    assert (cdr.team, cdr.diallogid, cdr.calltype) == (
        scenario.team,
        scenario.header["sessionid"],
        scenario.header["calltype"].lower(),
    )
    actual = {name: getattr(cdr, name) for name in scenario.expect}
    assert actual == scenario.expect


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_scenario_read_backwards_gives_the_same_cdr(path: Path) -> None:
    scenario = load(path)
    events = call_events(scenario)
    assert fold_call(reversed(events), scenario.registry) == fold_call(events, scenario.registry)


def test_loader_reads_a_table(tmp_path: Path) -> None:
    path = tmp_path / "call.txt"
    path.write_text(
        "# comment\n"
        "calltype: dialout\nsessionid: s1\nteam: acme\nregistry: 1001=8001 1002=8002\n\n"
        "eventTime  source  event  activenum  hangupcause\n"
        "2026-01-05 09:00:05  CALLEE  ringing  139  -\n"
        "1767574805.5  CALLEE  hangup  -  17\n"
        "expect:\nduration: 3\nanswertime: -\nendtime: 2026-01-05 09:00:08+08:00\n",
        encoding="utf-8",
    )
    scenario = load(path)
    assert scenario.registry == {"1001": "8001", "1002": "8002"}
    assert scenario.zone == ZoneInfo("UTC")
    ringing, hangup = scenario.rows
    assert ringing == {
        "eventTime": "2026-01-05 09:00:05",
        "source": "CALLEE",
        "event": "ringing",
        "activenum": "139",
    }
    assert hangup == {
        "eventTime": "1767574805.5",
        "source": "CALLEE",
        "event": "hangup",
        "hangupcause": "17",
    }
    assert scenario.expect == {
        "duration": 3,
        "answertime": None,
        "endtime": datetime.fromisoformat("2026-01-05T01:00:08+00:00"),
    }
