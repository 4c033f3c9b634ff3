"""`GET /api/v1/now`: the floor right now, per queue, cheap enough to poll every few
seconds (the wallboard and the supervisor view do)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cdrlog.core.agentstate import AgentState
from cdrlog.core.floor import FloorNow, QueueNow, Today, Waiting, floor_now
from cdrlog.core.report import CdrFilter, GroupBy, StatsTerms
from cdrlog.service.services import Services
from cdrlog.store.agents import listing
from cdrlog.store.reader import Reader
from cdrlog.store.waiting import waiting
from cdrlog.web import schemas
from cdrlog.web.deps import ServicesDep
from cdrlog.web.params import ReaderDep, ScopeDep, StatsTermsDep, TextQuery, ZoneDep

router = APIRouter(prefix="/api/v1")

STATES = ", ".join(state.value for state in AgentState)


class TodayOut(BaseModel):
    offered: int = Field(description="inbound calls since local midnight (`tz`), not waiting")
    short_abandoned: int
    abandoned: int
    answered_within: int
    service_level: float | None = Field(description="0..1; null when no call counts")
    abandon_rate: float | None = Field(description="0..1; null when no call counts")

    @classmethod
    def of(cls, today: Today) -> TodayOut:
        return cls(
            offered=today.offered,
            short_abandoned=today.short_abandoned,
            abandoned=today.abandoned,
            answered_within=today.answered_within,
            service_level=today.service_level,
            abandon_rate=today.abandon_rate,
        )


class QueueNowOut(BaseModel):
    orgidentity: str = Field(description="team")
    queue: str | None = Field(description="AgentGroupId; null: calls and agents of no queue")
    waiting: int = Field(description="inbound calls open and not answered")
    longest_wait: int | None = Field(description="seconds the longest waiting call has waited")
    agents: dict[str, int] = Field(description=f"agents of the queue by state ({STATES})")
    today: schemas.StatsOut | None = Field(description="today's figures, as `/stats` gives them")

    @classmethod
    def of(cls, queue: QueueNow) -> QueueNowOut:
        return cls(
            orgidentity=queue.team,
            queue=queue.queue,
            waiting=queue.waiting,
            longest_wait=queue.longest_wait,
            agents={state.value: queue.agents[state.value] for state in AgentState},
            today=None if queue.today is None else schemas.StatsOut.of(queue.today),
        )


class NowOut(BaseModel):
    at: str = Field(description=f"when this was read; {schemas.TIME}")
    tz: str
    service_level_seconds: int
    short_abandon_seconds: int
    waiting: int = Field(description="inbound calls waiting now, in the queues shown")
    longest_wait: int | None = Field(description="seconds, the longest of them")
    agents: dict[str, int] = Field(description=f"agents by state ({STATES})")
    today: TodayOut = Field(description="today's calls of the queues shown, summed")
    queues: list[QueueNowOut]


@router.get(
    "/now",
    tags=["stats"],
    response_model=NowOut,
    summary="The floor now: calls waiting, agents by state, today's service level, per queue",
    description="Inbound calls open and not answered are waiting (for at most the longest a "
    "call may last); agents' states are those of `/agents`; today is from local midnight "
    "in `tz`, with the figures `/stats` defines. `queue` (repeatable) keeps the queues "
    'named (`""`: calls and agents of no queue).',
)
def get_now(
    wired: ServicesDep,
    reader: ReaderDep,
    scope: ScopeDep,
    zone: ZoneDep,
    terms: StatsTermsDep,
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    queue: Annotated[list[str] | None, Query(description="queues to show; all if none")] = None,
) -> Any:
    teams = scope.narrow(team)
    at = wired.clock()
    floor = _floor(wired, reader, teams, at, zone, terms)
    if queue is not None:
        floor = _only(floor, {name or None for name in queue})
    return NowOut(
        at=at.astimezone(zone).isoformat(),
        tz=str(zone),
        service_level_seconds=terms.service_level_seconds,
        short_abandon_seconds=terms.short_abandon_seconds,
        waiting=floor.waiting,
        longest_wait=floor.longest_wait,
        agents=floor.agents,
        today=TodayOut.of(floor.today),
        queues=[QueueNowOut.of(q) for q in floor.queues],
    )


def _floor(
    wired: Services,
    reader: Reader,
    teams: tuple[str, ...] | None,
    at: datetime,
    zone: ZoneInfo,
    terms: StatsTerms,
) -> FloorNow:
    if teams == ():
        return floor_now(at, [], [], [])
    longest = timedelta(minutes=wired.settings.max_call_minutes)
    midnight = datetime.combine(at.astimezone(zone).date(), time(), tzinfo=zone)
    today = reader.stats(CdrFilter(start_from=midnight, teams=teams), GroupBy.QUEUE, zone, terms)
    agents = [(a.team, a.agent_group, a.state) for a in listing(reader.engine, teams, at, longest)]
    return floor_now(at, waiting(reader.engine, teams, at - longest), agents, today)


def _only(floor: FloorNow, names: set[str | None]) -> FloorNow:
    """The floor of these queues alone, its totals summed again."""
    kept = [q for q in floor.queues if q.queue in names]
    agents = [(q.team, q.queue, state) for q in kept for state in q.agents.elements()]
    today = [q.today for q in kept if q.today is not None]
    waits = [
        Waiting(q.team, q.queue, q.waiting, floor.at - timedelta(seconds=q.longest_wait or 0))
        for q in kept
        if q.waiting
    ]
    return floor_now(floor.at, waits, agents, today)
