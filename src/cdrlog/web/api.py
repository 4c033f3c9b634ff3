"""The read API of CDRs: pages (JSON, CSV, JSON lines), one CDR's timeline, and
statistics. HTTP only: queries live in `reader`, shapes in `schemas`; the operators'
reads are in `operators`.

Every parameter is bounded before any query runs (numbers to a signed 64-bit column,
times to `report.EARLIEST_ASKED`..`LATEST_ASKED`, text to `TEXT_MAX`): whatever a
client sends is answered 4xx naming the parameter, never 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from cdrlog.core.excerpts import PAGE_BYTES, TIMELINE_EVENTS
from cdrlog.core.exports import Batch, capped, csv_chunks, jsonl_chunks, shown
from cdrlog.core.report import MAX_ID, CdrFilter, Cursor, GroupBy, NumberMatch, Sort
from cdrlog.core.rules import Disposition, Status
from cdrlog.web import schemas
from cdrlog.web.cdrview import cdr_detail
from cdrlog.web.params import (
    SHORT_PAGES,
    ReaderDep,
    ScopeDep,
    StartFrom,
    StartTo,
    StatsTermsDep,
    TextQuery,
    ZoneDep,
    aware,
    one_of,
)

router = APIRouter(prefix="/api/v1")
# Longer than any stored team, agent, number or session id (64 or 128 characters): a
# longer filter could match nothing, and is refused rather than sent to the database.
# What a 422 says of each problem: bodies can be megabytes, so neither the value nor
# more than this of a field name or message is repeated, nor more problems than these.
SHOWN_OF_PROBLEM = 200
PROBLEMS_SHOWN = 20


def cdr_filter(
    scope: ScopeDep,
    zone: ZoneDep,
    start_from: StartFrom = None,
    start_to: StartTo = None,
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
    wanted_team = one_of("team", team, orgidentity)
    return CdrFilter(
        start_from=aware("from", start_from, zone),
        start_to=aware("to", start_to, zone),
        teams=scope.narrow(wanted_team),
        agentno=one_of("agent", agent, agentno),
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
    return cdr_detail(found, zone)


@router.get(
    "/stats",
    tags=["stats"],
    response_model=schemas.Stats,
    summary="Calls, ASR, ACD, talk and ring time, and call-center figures, per group",
    description="Groups: agent, team, queue (`agent_group`), local day, hour, or cell of "
    "the week (`weekday_hour`). Call-center figures count inbound calls only; see each "
    "field. `business_hours` and `business_days` keep every figure to calls that started "
    "within them.",
)
def get_stats(
    reader: ReaderDep,
    wanted: FilterDep,
    zone: ZoneDep,
    terms: StatsTermsDep,
    group_by: Annotated[
        GroupBy,
        Query(
            description='queue: `agent_group`, calls without one under ""; day, hour and '
            "weekday_hour (`mon 09`: only cells that hold calls) are local to zone `tz`"
        ),
    ],
) -> Any:
    rows = reader.stats(wanted, group_by, zone, terms)
    return schemas.Stats(
        group_by=group_by,
        tz=str(zone),
        service_level_seconds=terms.service_level_seconds,
        short_abandon_seconds=terms.short_abandon_seconds,
        rows=[schemas.StatsOut.of(r) for r in rows],
    )


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


def _dispositions(text: str | None) -> tuple[Disposition, ...]:
    if not text:
        return ()
    try:
        return tuple(Disposition(part.strip().upper()) for part in text.split(",") if part.strip())
    except ValueError as error:
        known = ", ".join(d.value for d in Disposition)
        raise HTTPException(400, {"disposition": f"must be among {known}"}) from error
