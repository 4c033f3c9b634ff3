"""What the read endpoints share: bounded query parameters and the dependencies that
give a handler its reader, its caller's teams and the zone to show times in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request

from cdrlog.core.excerpts import PAGE_BYTES
from cdrlog.core.report import MAX_ID, asked_time
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
