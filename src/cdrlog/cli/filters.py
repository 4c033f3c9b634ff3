"""The CDR filters of `cdrlog export` and `cdrlog stats`: the API's, by the same names
and with the same meaning (`GET /api/v1/cdrs`), so that a script can move between them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import click

from cdrlog.cli.options import time_range, zone_option
from cdrlog.core.report import MAX_ID, CdrFilter, NumberMatch
from cdrlog.core.rules import Disposition, Status
from cdrlog.service.settings import Settings

CALL_TYPES = ("dialout", "dialin")


@dataclass(frozen=True, slots=True)
class AskedCdrs:
    """The filters as given; times are read once the zone is known (`--tz`, else the
    display zone the settings give)."""

    start: str | None
    end: str | None
    team: str | None
    agent: str | None
    number: str | None
    src: str | None
    dst: str | None
    dispositions: tuple[Disposition, ...]
    calltype: str | None
    status: str | None
    min_billsec: int | None
    tz: str | None

    def zone(self, settings: Settings) -> ZoneInfo:
        return zone_option(self.tz) if self.tz else settings.display_zone

    def cdr_filter(self, zone: ZoneInfo) -> CdrFilter:
        since, until = time_range(self.start, self.end, zone)
        return CdrFilter(
            start_from=since,
            start_to=until,
            teams=(self.team,) if self.team else None,
            agentno=self.agent,
            number=NumberMatch.parse(self.number) if self.number else None,
            src=NumberMatch.parse(self.src) if self.src else None,
            dst=NumberMatch.parse(self.dst) if self.dst else None,
            dispositions=self.dispositions,
            calltype=self.calltype.lower() if self.calltype else None,
            status=Status(self.status) if self.status else None,
            min_billsec=self.min_billsec,
        )


def _dispositions(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[Disposition, ...]:
    """Repeated, or a comma list as the API takes it: `ANSWER,BUSY`, any case."""
    names = [part.strip().upper() for value in values for part in value.split(",")]
    known = {d.value: d for d in Disposition}
    unknown = [name for name in names if name and name not in known]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r} is not among {', '.join(known)}")
    return tuple(dict.fromkeys(known[name] for name in names if name))


_OPTIONS = (
    click.option("--from", "start", help="starttime at or after (ISO-8601; zone --tz if naive)."),
    click.option("--to", "end", help="starttime before (ISO-8601)."),
    click.option("--team", "--orgidentity", "team", help="Only this team."),
    click.option("--agent", "--agentno", "agent", help="Only this agent number."),
    click.option("--number", help="src or dst: exact, or a prefix ending in `*`."),
    click.option("--src", help="Calling number: exact, or a prefix ending in `*`."),
    click.option("--dst", help="Called number: exact, or a prefix ending in `*`."),
    click.option(
        "--disposition",
        "dispositions",
        multiple=True,
        callback=_dispositions,
        metavar="NAME[,NAME]",
        help="ANSWER, NOANSWER, BUSY, FAILED, CONGESTION (repeatable, or a comma list).",
    ),
    click.option(
        "--calltype", type=click.Choice(CALL_TYPES, case_sensitive=False), help="Only these."
    ),
    click.option("--status", type=click.Choice([s.value for s in Status]), help="Only these."),
    click.option(
        "--min-billsec", type=click.IntRange(0, MAX_ID), metavar="SECONDS", help="billsec at least."
    ),
    click.option(
        "--tz",
        metavar="ZONE",
        help="IANA zone of times shown, and of --from/--to without an offset.  "
        "[default: --display-timezone]",
    ),
)
_FIELDS = (
    "start",
    "end",
    "team",
    "agent",
    "number",
    "src",
    "dst",
    "dispositions",
    "calltype",
    "status",
    "min_billsec",
    "tz",
)


def cdr_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filter options, handed to `command` as one `asked: AskedCdrs`."""

    @functools.wraps(command)
    def taking(**values: Any) -> Any:
        asked = AskedCdrs(**{name: values.pop(name) for name in _FIELDS})
        return command(asked=asked, **values)

    for option in reversed(_OPTIONS):
        taking = option(taking)
    return taking
