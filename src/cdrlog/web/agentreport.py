"""`GET /api/v1/agents/report`: how long each agent was logged in, paused and in wrap-up
over a range, with its calls, occupancy and average handle time. HTTP only: the
arithmetic is in `agenttime`, the reads in `agents`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from cdrlog.core.agenttime import LONGEST_RANGE, report_range
from cdrlog.store.agents import AgentReport, time_report
from cdrlog.web import schemas
from cdrlog.web.deps import ServicesDep
from cdrlog.web.params import (
    AskedTime,
    ReaderDep,
    ScopeDep,
    TextQuery,
    ZoneDep,
    aware,
    one_of,
)

router = APIRouter(prefix="/api/v1")

DESCRIPTION = f"""For each agent of the team (a team's read token: its own team only),
over [`from`, `to`), by default today in `tz`; at most {LONGEST_RANGE.days} days.

* `logged_in_seconds`, `paused_seconds`, `after_call_work_seconds`: the agent's state over
  time, from its login/logoff/paused/nopaused/hangupacw/acwstop events in event time order
  (ties by `eventid`), clipped to the range. The state at `from` is the one the newest
  event before it left (logged out if none). Paused and wrap-up time are part of
  logged-in time. A state still going on at `to`, or now if earlier, counts up to then.
* `talk_seconds`: `billsec` summed over the CDRs naming the agent (`agentno`) that
  started in the range; `answered_calls`: those answered.
* `occupancy` = (talk + after_call_work) / (logged_in - paused), null when that is 0; it
  may exceed 1, as a call counts whole in the range it started in.
* `aht` (average handle time) = (talk + after_call_work) / answered_calls, null when 0.

Whole seconds, rounded half up. `queue` keeps the agents whose queue (`agent_group`, as
`GET /api/v1/agents` shows it) is that one; all their time and calls count. Like a CDR,
the figures depend only on the set of events stored, not on the order they came in."""


@router.get(
    "/agents/report",
    tags=["agents"],
    response_model=schemas.AgentReportOut,
    summary="Each agent's time logged in, paused and in wrap-up over a range, with its "
    "calls, occupancy and average handle time",
    description=DESCRIPTION,
)
def agent_report(
    wired: ServicesDep,
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    start_from: Annotated[
        AskedTime | None,
        Query(alias="from", description="at or after; ISO-8601, zone `tz` if naive"),
    ] = None,
    start_to: Annotated[AskedTime | None, Query(alias="to", description="before; ISO-8601")] = None,
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    orgidentity: Annotated[TextQuery, Query(description="same as `team`")] = None,
    queue: Annotated[TextQuery, Query(description="only agents of this AgentGroupId")] = None,
    agent_group: Annotated[TextQuery, Query(description="same as `queue`")] = None,
) -> Any:
    teams = scope.narrow(one_of("team", team, orgidentity))
    wanted_queue = one_of("queue", queue, agent_group)
    now = wired.clock()
    try:
        start, end = report_range(
            aware("from", start_from, zone), aware("to", start_to, zone), now, zone
        )
    except ValueError as error:
        # A range is wrong as a whole: the bounds the client gave are named.
        given = [
            name for name, value in (("from", start_from), ("to", start_to)) if value is not None
        ]
        raise HTTPException(400, dict.fromkeys(given or ["from", "to"], str(error))) from error
    found = [] if teams == () else time_report(reader.engine, teams, wanted_queue, start, end, now)
    return schemas.AgentReportOut(
        start_from=start.astimezone(zone).isoformat(),
        start_to=end.astimezone(zone).isoformat(),
        agents=[_shown(report) for report in found],
    )


def _shown(report: AgentReport) -> schemas.AgentTimeOut:
    figures = report.figures
    return schemas.AgentTimeOut(
        orgidentity=report.team,
        agentno=report.agentno,
        agent_group=report.agent_group,
        logged_in_seconds=figures.time.logged_in,
        paused_seconds=figures.time.paused,
        after_call_work_seconds=figures.time.after_call_work,
        talk_seconds=figures.talk,
        answered_calls=figures.answered_calls,
        occupancy=figures.occupancy,
        aht=figures.aht,
    )
