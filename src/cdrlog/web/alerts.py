"""Alerts: the rules (admin tokens: add, list, remove) and the alerts themselves, raised
now or cleared lately, which a team's read token sees for its own team only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cdrlog.core.alerts import (
    DEFAULT_WINDOW_MINUTES,
    LONGEST_WINDOW_MINUTES,
    MOST_SECONDS,
    NAME_MAX,
    NOTE_MAX,
    RATES,
    UNITS,
    Alert,
    AlertState,
    Metric,
    checked_rule,
)
from cdrlog.core.report import MAX_ID, SERVICE_LEVEL_SECONDS, SHORT_ABANDON_SECONDS
from cdrlog.service.alertrules import RuleRefused, add_rule, remove_rule
from cdrlog.store import alerts
from cdrlog.web import schemas
from cdrlog.web.auth import admin_only
from cdrlog.web.deps import ServicesDep
from cdrlog.web.params import ScopeDep, TextQuery, ZoneDep

rules_router = APIRouter(
    prefix="/api/v1/alerts/rules", tags=["alerts"], dependencies=[Depends(admin_only)]
)
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
RuleId = Annotated[int, Path(ge=1, le=MAX_ID)]
THRESHOLDS = "; ".join(f"{metric.value}: {unit}" for metric, unit in UNITS.items())


class RuleIn(BaseModel):
    team: str = Field(min_length=1, max_length=NAME_MAX, description="the team (orgidentity)")
    queue: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_MAX,
        description="the queue (AgentGroupId); null: every queue of the team",
    )
    metric: Metric
    threshold: float = Field(
        allow_inf_nan=False, description=f"in the metric's unit ({THRESHOLDS})"
    )
    window_minutes: int = Field(
        DEFAULT_WINDOW_MINUTES,
        ge=1,
        le=LONGEST_WINDOW_MINUTES,
        description="the rates are of calls that started this many minutes back",
    )
    service_level_seconds: int = Field(SERVICE_LEVEL_SECONDS, ge=1, le=MOST_SECONDS)
    short_abandon_seconds: int = Field(SHORT_ABANDON_SECONDS, ge=0, le=MOST_SECONDS)
    note: str | None = Field(None, max_length=NOTE_MAX)


class RuleOut(BaseModel):
    id: int
    team: str
    queue: str | None
    metric: str
    threshold: float
    window_minutes: int | None = Field(description="null for a figure of now")
    service_level_seconds: int
    short_abandon_seconds: int
    note: str | None
    created_at: datetime
    raised: bool = Field(description="whether its alert is raised now")
    value: float | None = Field(description="the figure as last measured")
    measured_at: datetime | None


class RuleList(BaseModel):
    rules: list[RuleOut]


class AlertOut(BaseModel):
    rule: int
    team: str
    queue: str | None
    metric: str
    threshold: float
    window_minutes: int | None = Field(description="null for a figure of now")
    value: float | None = Field(description="the figure as last measured, in the metric's unit")
    state: str = Field(description="raised or cleared")
    raised_at: str = Field(description=schemas.TIME)
    cleared_at: str | None = Field(description=f"null while raised; {schemas.TIME}")
    measured_at: str | None = Field(description=schemas.TIME)
    note: str | None
    rule_removed: bool


class AlertsOut(BaseModel):
    at: str = Field(description=f"when this was read; {schemas.TIME}")
    active: list[AlertOut] = Field(description="raised now, the most recently raised first")
    recent: list[AlertOut] = Field(description="cleared within `hours`, most recently raised first")


def _rule_out(alert: Alert) -> RuleOut:
    rule, state = alert.rule, alert.state
    assert rule.created_at is not None
    return RuleOut(
        id=rule.id,
        team=rule.team,
        queue=rule.queue,
        metric=rule.metric.value,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes if rule.metric in RATES else None,
        service_level_seconds=rule.service_level_seconds,
        short_abandon_seconds=rule.short_abandon_seconds,
        note=rule.note,
        created_at=rule.created_at,
        raised=state.raised,
        value=state.value,
        measured_at=state.measured_at,
    )


def _local(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def _alert_out(alert: Alert, zone: ZoneInfo) -> AlertOut:
    rule, state = alert.rule, alert.state
    assert state.raised_at is not None  # only alerts raised at least once are listed
    return AlertOut(
        rule=rule.id,
        team=rule.team,
        queue=rule.queue,
        metric=rule.metric.value,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes if rule.metric in RATES else None,
        value=state.value,
        state="raised" if state.raised else "cleared",
        raised_at=state.raised_at.astimezone(zone).isoformat(),
        cleared_at=None if state.raised else _local(state.cleared_at, zone),
        measured_at=_local(state.measured_at, zone),
        note=rule.note,
        rule_removed=rule.removed_at is not None,
    )


@rules_router.get("", response_model=RuleList, summary="Every alert rule, with its alert")
def list_rules(wired: ServicesDep) -> Any:
    return RuleList(rules=[_rule_out(alert) for alert in alerts.watched(wired.engine)])


@rules_router.post(
    "",
    status_code=201,
    response_model=RuleOut,
    summary="Watch a figure of a team (or one of its queues) past a threshold",
    description="`service_level_below` and `abandon_rate_above` are of the inbound calls "
    "that started in the last `window_minutes`, as `/stats` defines them; "
    "`waiting_above` and `wait_above` of the calls waiting now (as `/now` counts them); "
    "`silent_minutes` is the time since the team's newest event of any kind. An alert is "
    "raised when the figure is past the threshold and cleared when it is back, each "
    "sent once as `alert.raised` / `alert.cleared` to the hooks that take them.",
    responses={400: {"description": "the field that is wrong, named"}},
)
async def add(wired: ServicesDep, given: RuleIn) -> Any:
    try:
        asked = checked_rule(
            given.team,
            given.queue,
            given.metric,
            given.threshold,
            window_minutes=given.window_minutes,
            service_level_seconds=given.service_level_seconds,
            short_abandon_seconds=given.short_abandon_seconds,
            note=given.note,
        )
        made = await run_in_threadpool(add_rule, wired.engine, wired.clock, asked)
    except (ValueError, RuleRefused) as refused:
        raise HTTPException(400, str(refused)) from None
    return _rule_out(Alert(made, AlertState()))


@rules_router.delete(
    "/{rule_id}",
    status_code=204,
    summary="Remove a rule; its alert, if raised, is cleared (and that sent)",
    responses={404: {"description": "no such rule"}},
)
def remove(wired: ServicesDep, rule_id: RuleId) -> None:
    if not remove_rule(wired.engine, wired.clock, rule_id):
        raise HTTPException(404, "no such alert rule")


@router.get(
    "",
    response_model=AlertsOut,
    summary="Alerts raised now, and those cleared lately",
    description="A read token sees its own team's alerts only. `hours`: how far back a "
    "cleared alert is still listed under `recent`.",
)
def get_alerts(
    wired: ServicesDep,
    scope: ScopeDep,
    zone: ZoneDep,
    team: Annotated[TextQuery, Query(description="team (orgidentity)")] = None,
    hours: Annotated[int, Query(ge=1, le=24 * 7)] = 24,
) -> Any:
    at = wired.clock()
    teams = scope.narrow(team)
    found = [] if teams == () else alerts.alerts(wired.engine, teams, at - timedelta(hours=hours))
    return AlertsOut(
        at=at.astimezone(zone).isoformat(),
        active=[_alert_out(a, zone) for a in found if a.state.raised],
        recent=[_alert_out(a, zone) for a in found if not a.state.raised],
    )
