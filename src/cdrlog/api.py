"""The read API: CDRs (JSON, CSV, JSON lines), one CDR's timeline, statistics, agents'
states, the journal and the dead letters. HTTP only: queries live in `reader` and
`agents`, shapes in `schemas`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse

from cdrlog import schemas
from cdrlog.agents import listing
from cdrlog.auth import reader_scope
from cdrlog.exports import Batch, capped, csv_chunks, jsonl_chunks, shown
from cdrlog.ingest import Clock
from cdrlog.reader import EventFilter, Reader
from cdrlog.report import CdrFilter, Cursor, GroupBy, NumberMatch, Sort
from cdrlog.rules import Disposition, Status
from cdrlog.scope import Scope
from cdrlog.settings import Settings, zone_named

router = APIRouter(prefix="/api/v1")
# Ids and counts fit a signed 64-bit column; larger numbers are refused before any query.
MAX_ID = 2**63 - 1

ScopeDep = Annotated[Scope, Depends(reader_scope)]


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


def display_zone(
    request: Request,
    tz: Annotated[
        str | None, Query(description="IANA zone for shown times, e.g. Asia/Shanghai")
    ] = None,
) -> ZoneInfo:
    settings: Settings = request.app.state.settings
    try:
        return zone_named(tz) if tz else settings.display_zone
    except ValueError as error:
        raise HTTPException(400, {"tz": str(error)}) from error


ZoneDep = Annotated[ZoneInfo, Depends(display_zone)]
ReaderDep = Annotated[Reader, Depends(_reader)]


def cdr_filter(
    scope: ScopeDep,
    zone: ZoneDep,
    start_from: Annotated[
        datetime | None,
        Query(alias="from", description="starttime at or after; ISO-8601, zone `tz` if naive"),
    ] = None,
    start_to: Annotated[
        datetime | None, Query(alias="to", description="starttime before; ISO-8601")
    ] = None,
    team: Annotated[str | None, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[str | None, Query(description="same as `team`")] = None,
    agent: Annotated[str | None, Query(description="agent number")] = None,
    agentno: Annotated[str | None, Query(description="same as `agent`")] = None,
    number: Annotated[
        str | None, Query(description="src or dst; exact, or a prefix ending in `*`")
    ] = None,
    src: Annotated[str | None, Query(description="exact, or a prefix ending in `*`")] = None,
    dst: Annotated[str | None, Query(description="exact, or a prefix ending in `*`")] = None,
    disposition: Annotated[
        str | None, Query(description="ANSWER, NOANSWER, BUSY, FAILED, CONGESTION; comma list")
    ] = None,
    calltype: Annotated[str | None, Query(description="dialout or dialin")] = None,
    status: Annotated[Status | None, Query()] = None,
    min_billsec: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="billsec at least")
    ] = None,
) -> CdrFilter:
    wanted_team = _one_of("team", team, orgidentity)
    return CdrFilter(
        start_from=_aware(start_from, zone),
        start_to=_aware(start_to, zone),
        teams=scope.narrow(wanted_team),
        agentno=_one_of("agent", agent, agentno),
        number=NumberMatch.parse(number) if number else None,
        src=NumberMatch.parse(src) if src else None,
        dst=NumberMatch.parse(dst) if dst else None,
        dispositions=_dispositions(disposition),
        calltype=calltype.lower() if calltype else None,
        status=status,
        min_billsec=min_billsec,
    )


FilterDep = Annotated[CdrFilter, Depends(cdr_filter)]


@router.get(
    "/cdrs",
    tags=["cdrs"],
    response_model=schemas.CdrPage,
    summary="CDRs, filtered and paged; or the whole filtered set as CSV or JSON lines",
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
def list_cdrs(
    request: Request,
    reader: ReaderDep,
    wanted: FilterDep,
    zone: ZoneDep,
    sort: Annotated[Sort, Query(description="by starttime, then id")] = Sort.NEWEST,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="page size (default 50); caps an export")
    ] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    format: Annotated[
        Literal["json", "csv", "jsonl"] | None,
        Query(description="csv or jsonl stream every matching CDR (also Accept: text/csv)"),
    ] = None,
) -> Any:
    chosen = format or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")
    if chosen != "json":
        batches = reader.batches(wanted, sort)
        # Read the first batch now: a query the database refuses must be a 400, which
        # it can no longer be once the streamed 200 has begun.
        first = next(batches, None)
        everything = batches if first is None else chain([first], batches)
        return _stream(capped(everything, limit), chosen, zone)
    try:
        after = Cursor.decode(cursor) if cursor else None
    except ValueError as error:
        raise HTTPException(400, {"cursor": str(error)}) from error
    found = reader.page(wanted, sort, after, limit or 50)
    cdrs = [schemas.CdrOut(**shown(row, zone)) for row in found.rows]
    following = found.next_cursor.encode() if found.next_cursor else None
    return schemas.CdrPage(total=found.total, count=len(cdrs), next_cursor=following, cdrs=cdrs)


@router.get(
    "/cdrs/{cdr_id}",
    tags=["cdrs"],
    response_model=schemas.CdrDetail,
    summary="One CDR and its call's events (the timeline), in event time order",
    responses={404: {"description": "no such CDR (for this reader)"}},
)
def get_cdr(
    cdr_id: Annotated[int, Path(ge=1, le=MAX_ID)], reader: ReaderDep, scope: ScopeDep, zone: ZoneDep
) -> Any:
    found = reader.cdr(cdr_id, scope.teams)
    if found is None:
        raise HTTPException(404, "no such CDR")
    events = [schemas.EventOut(**shown(e, zone)) for e in found.pop("events")]
    return schemas.CdrDetail(**shown(found, zone), events=events)


@router.get(
    "/stats",
    tags=["stats"],
    response_model=schemas.Stats,
    summary="Calls, ASR, ACD, talk time and ring time per agent, team, day or hour",
)
def get_stats(
    reader: ReaderDep,
    wanted: FilterDep,
    zone: ZoneDep,
    group_by: Annotated[GroupBy, Query(description="days and hours are in zone `tz`")],
) -> Any:
    rows = reader.stats(wanted, group_by, zone)
    return schemas.Stats(
        group_by=group_by, tz=str(zone), rows=[schemas.StatsOut.of(r) for r in rows]
    )


@router.get(
    "/agents",
    tags=["agents"],
    response_model=schemas.AgentList,
    summary="Each agent and its state now: available, on a call, paused, wrap-up or logged out",
)
def list_agents(
    request: Request,
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: Annotated[str | None, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[str | None, Query(description="same as `team`")] = None,
) -> Any:
    teams = scope.narrow(_one_of("team", team, orgidentity))
    if teams == ():
        return schemas.AgentList(agents=[])
    settings: Settings = request.app.state.settings
    clock: Clock = request.app.state.clock
    # The same limit that closes a call as timeout: a call past it is no longer on.
    longest = timedelta(minutes=settings.max_call_minutes)
    found = listing(reader.engine, teams, clock(), longest)
    return schemas.AgentList(agents=[schemas.AgentOut.of(agent, zone) for agent in found])


@router.get(
    "/events",
    tags=["operators"],
    response_model=schemas.EventPage,
    summary="The journal: every accepted event as received, newest first",
)
def list_events(
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: Annotated[str | None, Query()] = None,
    sessionid: Annotated[str | None, Query()] = None,
    since: Annotated[
        datetime | None, Query(alias="from", description="eventTime at or after")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="eventTime before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the previous page")
    ] = None,
) -> Any:
    wanted = EventFilter(scope.narrow(team), sessionid, _aware(since, zone), _aware(until, zone))
    rows = reader.events(wanted, before, limit)
    following = rows[-1]["id"] if len(rows) == limit else None
    return schemas.EventPage(
        events=[schemas.EventOut(**shown(row, zone)) for row in rows], next_before=following
    )


@router.get(
    "/rejected",
    tags=["operators"],
    response_model=schemas.DeadLetterPage,
    summary="Dead letters: refused push bodies, with why, newest first",
)
def list_rejected(
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: Annotated[str | None, Query()] = None,
    unresolved: Annotated[bool, Query(description="only those no retry has resolved")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Any:
    rows = reader.dead_letters(scope.narrow(team), before, limit, unresolved)
    following = rows[-1]["id"] if len(rows) == limit else None
    letters = [schemas.DeadLetterOut(**shown(row, zone)) for row in rows]
    return schemas.DeadLetterPage(rejected=letters, next_before=following)


def _stream(batches: Iterator[Batch], chosen: str, zone: ZoneInfo) -> StreamingResponse:
    if chosen == "csv":
        return StreamingResponse(
            csv_chunks(batches, zone),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'},
        )
    return StreamingResponse(
        jsonl_chunks(batches, zone),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="cdrs.jsonl"'},
    )


def _aware(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time given without an offset is read in the reader's zone."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        return aware.astimezone(UTC)
    except OverflowError as error:
        raise HTTPException(400, {"time": f"{moment.isoformat()} is out of range"}) from error


def _one_of(name: str, value: str | None, alias: str | None) -> str | None:
    if value is not None and alias is not None and value != alias:
        raise HTTPException(400, {name: f"given twice, as {value!r} and {alias!r}"})
    return value if value is not None else alias


def _dispositions(text: str | None) -> tuple[Disposition, ...]:
    if not text:
        return ()
    try:
        return tuple(Disposition(part.strip().upper()) for part in text.split(",") if part.strip())
    except ValueError as error:
        known = ", ".join(d.value for d in Disposition)
        raise HTTPException(400, {"disposition": f"must be among {known}"}) from error
