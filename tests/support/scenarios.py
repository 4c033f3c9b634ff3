"""Scenario tables: each `tests/scenarios/*.txt` read as one call's events and its CDR."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cdrlog.core.events import CallEvent, parse_event
from cdrlog.core.record import Cdr

SCENARIOS = Path(__file__).parents[1] / "scenarios"


FILES = sorted(SCENARIOS.glob("*.txt"))


HEADER_KEYS = frozenset({"calltype", "sessionid", "team", "timezone", "registry"})


# Every scenario with a CDR states all the CDR's fields but these, which are checked
# against the header.
FROM_HEADER = frozenset({"team", "diallogid", "calltype"})
EXPECTED_COLUMNS = frozenset(field.name for field in fields(Cdr)) - FROM_HEADER


ROW = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\S*|\S+)\s+(.*)")


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


Value = str | int | datetime | None

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
