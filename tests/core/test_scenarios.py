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

from dataclasses import fields
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cdrlog.core.cdr import fold_call
from cdrlog.core.record import Cdr
from support.scenarios import (
    EXPECTED_COLUMNS,
    FILES,
    call_events,
    load,
)


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
