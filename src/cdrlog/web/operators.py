"""What operators read: agents' states, the journal of accepted events, and the dead
letters. HTTP only: queries live in `reader` and `agents`, shapes in `schemas`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from cdrlog.core.exports import shown
from cdrlog.core.report import MAX_ID
from cdrlog.store.agents import listing
from cdrlog.store.reader import EventFilter
from cdrlog.web import schemas
from cdrlog.web.deps import ServicesDep
from cdrlog.web.params import (
    SHORT_PAGES,
    AskedTime,
    Before,
    PageSize,
    ReaderDep,
    ScopeDep,
    TextQuery,
    ZoneDep,
    aware,
    one_of,
)

router = APIRouter(prefix="/api/v1")


@router.get(
    "/agents",
    tags=["agents"],
    response_model=schemas.AgentList,
    summary="Each agent and its state now: available, on a call, paused, wrap-up or logged out",
)
def list_agents(
    wired: ServicesDep,
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[TextQuery, Query(description="same as `team`")] = None,
) -> Any:
    teams = scope.narrow(one_of("team", team, orgidentity))
    if teams == ():
        return schemas.AgentList(agents=[])
    # The same limit that closes a call as timeout: a call past it is no longer on.
    longest = timedelta(minutes=wired.settings.max_call_minutes)
    found = listing(reader.engine, teams, wired.clock(), longest)
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
        AskedTime | None, Query(alias="from", description="eventTime at or after")
    ] = None,
    until: Annotated[AskedTime | None, Query(alias="to", description="eventTime before")] = None,
    limit: PageSize = 100,
    before: Before = None,
) -> Any:
    since_utc, until_utc = aware("from", since, zone), aware("to", until, zone)
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
    limit: PageSize = 100,
    before: Before = None,
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


@router.get(
    "/push-auth",
    tags=["operators"],
    response_model=schemas.PushAuthOut,
    summary="The token rollout: each team's push-auth mode and its pushes without a token",
    description="A read token sees its own team. A team still pushing without a token "
    "shows a recent `last_tokenless_at`: its asterCC URL does not carry its token yet.",
)
def push_auth(wired: ServicesDep, scope: ScopeDep, zone: ZoneDep) -> Any:
    wired.pushes.flush()  # this process's latest tally, not that of two seconds ago
    teams = [t for t in wired.tokens.rollout() if scope.narrow(t.team) != ()]
    return schemas.PushAuthOut(
        tokens=wired.tokens.any_active(),
        default_mode=wired.tokens.default_push_mode(),
        teams=[schemas.TeamPushAuthOut.of(team, zone) for team in teams],
    )
