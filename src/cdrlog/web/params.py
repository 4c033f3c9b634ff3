"""What the read endpoints share: bounded query parameters and the dependencies that
give a handler its reader, its caller's teams, the zone to show times in and the terms
statistics are measured against."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request
from pydantic import BeforeValidator

from cdrlog.core.excerpts import PAGE_BYTES
from cdrlog.core.hours import BusinessHours
from cdrlog.core.report import (
    MAX_ID,
    SERVICE_LEVEL_SECONDS,
    SHORT_ABANDON_SECONDS,
    StatsTerms,
    asked_time,
)
from cdrlog.core.scope import Scope
from cdrlog.service.settings import zone_named
from cdrlog.store.reader import Reader
from cdrlog.web.auth import reader_scope
from cdrlog.web.deps import services

TEXT_MAX = 256
SHORT_PAGES = (
    f" A page may hold fewer rows than `limit`: it also ends at about {PAGE_BYTES >> 20} "
    "MiB, and big values are cut (see the `*_truncated` flags)."
)
TextQuery = Annotated[str | None, Query(max_length=TEXT_MAX)]

ScopeDep = Annotated[Scope, Depends(reader_scope)]
PageSize = Annotated[int, Query(ge=1, le=1000)]
_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*")


def _iso_time(value: object) -> object:
    """A time asked for is ISO-8601. A bare number is refused rather than read as Unix
    time, as pydantic would: `20261204`, a date in ISO-8601's basic form, would mean
    1970-08-23 without a word."""
    if isinstance(value, str) and _BARE_NUMBER.fullmatch(value):
        raise ValueError("a time is ISO-8601, e.g. 2026-12-04T09:00:00+08:00; not a bare number")
    return value


# A time in a query: ISO-8601, with or without an offset.
AskedTime = Annotated[datetime, BeforeValidator(_iso_time)]
# The range of a call's start, as every listing of calls takes it.
StartFrom = Annotated[
    AskedTime | None,
    Query(alias="from", description="starttime at or after; ISO-8601, zone `tz` if naive"),
]
StartTo = Annotated[AskedTime | None, Query(alias="to", description="starttime before; ISO-8601")]
Before = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the previous page")
]


def _reader(request: Request) -> Reader:
    return services(request).reader


def display_zone(
    request: Request,
    tz: Annotated[
        str | None, Query(description="IANA zone for shown times, e.g. Asia/Shanghai")
    ] = None,
) -> ZoneInfo:
    settings = services(request).settings
    try:
        return zone_named(tz) if tz else settings.display_zone
    except ValueError as error:
        refused = "is not an IANA time zone name (e.g. Asia/Shanghai)"
        raise HTTPException(400, {"tz": refused}) from error


ZoneDep = Annotated[ZoneInfo, Depends(display_zone)]
ReaderDep = Annotated[Reader, Depends(_reader)]


def aware(name: str, moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time given without an offset is read in the reader's zone."""
    if moment is None:
        return None
    try:
        return asked_time(moment, zone)
    except ValueError as error:
        raise HTTPException(400, {name: str(error)}) from error


def one_of(name: str, value: str | None, alias: str | None) -> str | None:
    if value is not None and alias is not None and value != alias:
        raise HTTPException(400, {name: f"given twice, as {value!r} and {alias!r}"})
    return value if value is not None else alias


# A wait longer than a day is no queue's; the bound keeps the numbers sane.
WaitSeconds = Annotated[int, Query(ge=0, le=86_400)]


def stats_terms(
    service_level_seconds: Annotated[
        WaitSeconds,
        Query(
            description="`answered_within` counts answered inbound calls that waited at "
            "most this many seconds"
        ),
    ] = SERVICE_LEVEL_SECONDS,
    short_abandon_seconds: Annotated[
        WaitSeconds,
        Query(
            description="an unanswered inbound call that waited less is a short abandon, "
            "left out of `service_level` and `abandon_rate`"
        ),
    ] = SHORT_ABANDON_SECONDS,
    business_hours: Annotated[
        str | None,
        Query(
            max_length=32,
            description="only calls that started between these local "
            "times (zone `tz`; the end excluded), e.g. `08:00-20:00`",
        ),
    ] = None,
    business_days: Annotated[
        str | None,
        Query(
            max_length=64,
            description="only calls that started on these local days "
            "(zone `tz`): `mon-fri`, `mon,wed,fri`, `sat-sun`",
        ),
    ] = None,
) -> StatsTerms:
    try:
        BusinessHours.parse(business_hours, None)
    except ValueError as error:
        raise HTTPException(400, {"business_hours": str(error)}) from error
    try:
        business = BusinessHours.parse(business_hours, business_days)
    except ValueError as error:
        raise HTTPException(400, {"business_days": str(error)}) from error
    return StatsTerms(service_level_seconds, short_abandon_seconds, business)


StatsTermsDep = Annotated[StatsTerms, Depends(stats_terms)]
