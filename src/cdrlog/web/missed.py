"""`GET /api/v1/missed`: abandoned inbound calls and whether anyone dealt with them.
HTTP only: the SQL lives in `cdrlog.store.missed`, the matching in `cdrlog.core.missed`."""

from __future__ import annotations

from datetime import timedelta
from itertools import chain
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from cdrlog.core.missed import MissedFilter, missed_csv, missed_fields
from cdrlog.core.report import Cursor
from cdrlog.store.missed import every_missed, missed_page
from cdrlog.web import schemas
from cdrlog.web.params import (
    ReaderDep,
    ScopeDep,
    StartFrom,
    StartTo,
    TextQuery,
    ZoneDep,
    aware,
    one_of,
)

router = APIRouter(prefix="/api/v1")

DEFINITIONS = """
An **inbound call** is a CDR of calltype `dialin`; its caller's number is its `src`.
Its **wait** is `answertime - starttime` when answered, else `endtime - starttime`.

* **abandoned**: an inbound call, closed (status not `open`), never answered, that
  waited at least `short_abandon_seconds` (shorter ones are misdials, left out);
  `from`/`to` are on its starttime.
* **called back**: an outbound (`dialout`) CDR of the same team to that number (`dst`
  equal to the abandoned call's `src`) whose *starttime* is after the abandoned call's
  starttime and at most `callback_hours` after it (possibly after `to`).
  `called_back_at` is the first such call's starttime; `callback_answered` whether
  *any* of them was answered; `callback_agent` the agent of the first answered one,
  else of the first.
* **got through**: a later answered inbound call from that number, same team, in the
  same window; `got_through_at` is the first one's starttime.
* **resolved**: the customer was reached: an answered callback, or got through.
  A callback nobody answered does not resolve a call.

Newest first; a read token sees only its team's calls and callbacks.
"""


def missed_filter(
    scope: ScopeDep,
    zone: ZoneDep,
    start_from: StartFrom = None,
    start_to: StartTo = None,
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[TextQuery, Query(description="same as `team`")] = None,
    agent_group: Annotated[TextQuery, Query(description="queue (AgentGroupId)")] = None,
    short_abandon_seconds: Annotated[
        int, Query(ge=0, le=86_400, description="shorter waits are misdials, left out")
    ] = 5,
    callback_hours: Annotated[
        int, Query(ge=1, le=24 * 31, description="how long after a call a callback counts")
    ] = 24,
    unresolved: Annotated[
        bool, Query(description="only calls whose customer was not reached")
    ] = False,
) -> MissedFilter:
    return MissedFilter(
        start_from=aware("from", start_from, zone),
        start_to=aware("to", start_to, zone),
        teams=scope.narrow(one_of("team", team, orgidentity)),
        agent_group=agent_group,
        short_abandon=timedelta(seconds=short_abandon_seconds),
        window=timedelta(hours=callback_hours),
        unresolved=unresolved,
    )


@router.get(
    "/missed",
    tags=["cdrs"],
    response_model=schemas.MissedPage,
    summary="Abandoned inbound calls: called back, got through, resolved?",
    description=DEFINITIONS,
    responses={200: {"content": {"text/csv": {}}}},
)
def list_missed(
    request: Request,
    reader: ReaderDep,
    wanted: Annotated[MissedFilter, Depends(missed_filter)],
    zone: ZoneDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 50,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (JSON only)")
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="csv streams every matching call (also Accept: text/csv)"),
    ] = None,
) -> Any:
    chosen = format or ("csv" if "text/csv" in request.headers.get("accept", "") else "json")
    if chosen == "csv":
        batches = every_missed(reader, wanted)
        # Read the first batch now: a query the database refuses must be a 400, which
        # it can no longer be once the streamed 200 has begun.
        first = next(batches, None)
        everything = batches if first is None else chain([first], batches)
        return StreamingResponse(
            missed_csv(everything, zone),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="missed.csv"'},
        )
    try:
        after = Cursor.decode(cursor) if cursor else None
    except ValueError as error:
        raise HTTPException(400, {"cursor": str(error)}) from error
    found = missed_page(reader, wanted, after, limit)
    rows = [schemas.MissedOut(**missed_fields(m, zone)) for m in found.rows]
    following = found.next_cursor.encode() if found.next_cursor else None
    return schemas.MissedPage(count=len(rows), next_cursor=following, missed=rows)
