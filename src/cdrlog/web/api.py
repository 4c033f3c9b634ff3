"""The read API: CDRs (JSON, CSV, JSON lines), one CDR's timeline, statistics, agents'
states, the journal and the dead letters. HTTP only: queries live in `reader` and
`agents`, shapes in `schemas`.

Every parameter is bounded before any query runs (numbers to a signed 64-bit column,
times to `report.EARLIEST_ASKED`..`LATEST_ASKED`, text to `TEXT_MAX`): whatever a
client sends is answered 4xx naming the parameter, never 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import chain
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from cdrlog.core.excerpts import PAGE_BYTES, TIMELINE_EVENTS
from cdrlog.core.exports import Batch, capped, csv_chunks, jsonl_chunks, shown
from cdrlog.core.report import MAX_ID, CdrFilter, Cursor, GroupBy, NumberMatch, Sort, asked_time
from cdrlog.core.rules import Disposition, Status
from cdrlog.core.scope import Scope
from cdrlog.service.ingest import Clock
from cdrlog.service.settings import Settings, zone_named
from cdrlog.store.agents import listing
from cdrlog.store.reader import EventFilter, Reader
from cdrlog.web import schemas
from cdrlog.web.auth import reader_scope

router = APIRouter(prefix="/api/v1")
# Longer than any stored team, agent, number or session id (64 or 128 characters): a
# longer filter could match nothing, and is refused rather than sent to the database.
TEXT_MAX = 256
# What a 422 says of each problem: bodies can be megabytes, so neither the value nor
# more than this of a field name or message is repeated, nor more problems than these.
SHOWN_OF_PROBLEM = 200
PROBLEMS_SHOWN = 20
SHORT_PAGES = (
    f" A page may hold fewer rows than `limit`: it also ends at about {PAGE_BYTES >> 20} "
    "MiB, and big values are cut (see the `*_truncated` flags)."
)
TextQuery = Annotated[str | None, Query(max_length=TEXT_MAX)]

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
        refused = "is not an IANA time zone name (e.g. Asia/Shanghai)"
        raise HTTPException(400, {"tz": refused}) from error


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
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[TextQuery, Query(description="same as `team`")] = None,
    agent: Annotated[TextQuery, Query(description="agent number")] = None,
    agentno: Annotated[TextQuery, Query(description="same as `agent`")] = None,
    number: Annotated[
        TextQuery, Query(description="src or dst; exact, or a prefix ending in `*`")
    ] = None,
    src: Annotated[TextQuery, Query(description="exact, or a prefix ending in `*`")] = None,
    dst: Annotated[TextQuery, Query(description="exact, or a prefix ending in `*`")] = None,
    disposition: Annotated[
        TextQuery, Query(description="ANSWER, NOANSWER, BUSY, FAILED, CONGESTION; comma list")
    ] = None,
    calltype: Annotated[TextQuery, Query(description="dialout or dialin")] = None,
    status: Annotated[Status | None, Query()] = None,
    min_billsec: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="billsec at least")
    ] = None,
) -> CdrFilter:
    wanted_team = _one_of("team", team, orgidentity)
    return CdrFilter(
        start_from=_aware("from", start_from, zone),
        start_to=_aware("to", start_to, zone),
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
    description="Pages walk one snapshot: `next_cursor` continues it." + SHORT_PAGES,
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
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (JSON only)")
    ] = None,
    format: Annotated[
        Literal["json", "csv", "jsonl"] | None,
        Query(description="csv or jsonl stream every matching CDR (also Accept: text/csv)"),
    ] = None,
) -> Any:
    chosen = format or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")
    try:
        after = Cursor.decode(cursor) if cursor else None
    except ValueError as error:
        raise HTTPException(400, {"cursor": str(error)}) from error
    if chosen != "json":
        batches = reader.batches(wanted, sort)
        # Read the first batch now: a query the database refuses must be a 400, which
        # it can no longer be once the streamed 200 has begun.
        first = next(batches, None)
        everything = batches if first is None else chain([first], batches)
        return _stream(capped(everything, limit), chosen, zone)
    found = reader.page(wanted, sort, after, limit or 50)
    cdrs = [schemas.CdrOut(**shown(row, zone)) for row in found.rows]
    following = found.next_cursor.encode() if found.next_cursor else None
    return schemas.CdrPage(total=found.total, count=len(cdrs), next_cursor=following, cdrs=cdrs)


@router.get(
    "/cdrs/{cdr_id}",
    tags=["cdrs"],
    response_model=schemas.CdrDetail,
    summary="One CDR and its call's events (the timeline), in event time order",
    description=f"At most {TIMELINE_EVENTS:,} events and about {PAGE_BYTES >> 20} MiB of "
    "them (then `events_truncated`); each event's `fields` cut as in `GET /api/v1/events`.",
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
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[TextQuery, Query(description="same as `team`")] = None,
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
    description="`next_before` continues the walk." + SHORT_PAGES,
)
def list_events(
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: TextQuery = None,
    sessionid: TextQuery = None,
    since: Annotated[
        datetime | None, Query(alias="from", description="eventTime at or after")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="eventTime before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_before` of the previous page")
    ] = None,
) -> Any:
    since_utc, until_utc = _aware("from", since, zone), _aware("to", until, zone)
    found = reader.events(
        EventFilter(scope.narrow(team), sessionid, since_utc, until_utc), before, limit
    )
    events = [schemas.EventOut(**shown(row, zone)) for row in found.rows]
    return schemas.EventPage(events=events, next_before=found.next_before)


@router.get(
    "/rejected",
    tags=["operators"],
    response_model=schemas.DeadLetterPage,
    summary="Dead letters: refused push bodies, with why, newest first",
    description="`next_before` continues the walk." + SHORT_PAGES,
)
def list_rejected(
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: TextQuery = None,
    unresolved: Annotated[bool, Query(description="only those no retry has resolved")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Any:
    found = reader.dead_letter_listing(scope.narrow(team), before, limit, unresolved)
    letters = [schemas.DeadLetterOut(**shown(row, zone)) for row in found.rows]
    return schemas.DeadLetterPage(rejected=letters, next_before=found.next_before)


@router.get(
    "/rejected/{letter_id}",
    tags=["operators"],
    response_model=schemas.DeadLetterOut,
    summary="One dead letter, with more of its body than the listing shows",
    responses={404: {"description": "no such dead letter (for this reader)"}},
)
def get_rejected(
    letter_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
) -> Any:
    found = reader.shown_dead_letter(letter_id, scope.teams)
    if found is None:
        raise HTTPException(404, "no such dead letter")
    return schemas.DeadLetterOut(**shown(found, zone))


async def invalid_request(request: Request, error: Exception) -> JSONResponse:
    """The app's answer to a request its parameters or body do not fit: 422, naming each
    parameter or field and what is wrong with it, in FastAPI's shape less the `input`
    (and `ctx`), which would repeat the client's value back however big it is."""
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    detail = [
        {
            "type": problem["type"],
            "loc": [_short(part) for part in problem["loc"]],
            "msg": _short(problem["msg"]),
        }
        for problem in problems[:PROBLEMS_SHOWN]
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _short(part: Any) -> Any:
    return part[:SHOWN_OF_PROBLEM] if isinstance(part, str) else part


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


def _aware(name: str, moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time given without an offset is read in the reader's zone."""
    if moment is None:
        return None
    try:
        return asked_time(moment, zone)
    except ValueError as error:
        raise HTTPException(400, {name: str(error)}) from error


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
