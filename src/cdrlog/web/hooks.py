"""The admin API of hooks: subscribe, list, remove, test, and the failed deliveries
(list, replay). Admin tokens only: a hook sends every CDR of its teams elsewhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cdrlog.core.hooks import Kind, parse_kinds
from cdrlog.core.report import MAX_ID
from cdrlog.core.targets import shown
from cdrlog.service.hookadmin import HookRefused, SendFailed, send_test, subscribe
from cdrlog.store import hooks
from cdrlog.web.auth import admin_only
from cdrlog.web.deps import ServicesDep

router = APIRouter(prefix="/api/v1/hooks", tags=["hooks"], dependencies=[Depends(admin_only)])
HookId = Annotated[int, Path(ge=1, le=MAX_ID)]


class HookIn(BaseModel):
    target: str = Field(
        max_length=1024,
        description="http(s):// URL (a signed POST per change) or "
        "amqp(s)://USER:PASS@HOST/VHOST?exchange=NAME (a persistent message per change)",
    )
    team: str | None = Field(
        None, max_length=64, description="only this team's changes; null: every team's"
    )
    kinds: list[Kind] = Field(default_factory=lambda: [Kind.CDR_CLOSED], max_length=8)
    secret: str | None = Field(None, max_length=255, description="whsec_...; made when not given")
    note: str | None = Field(None, max_length=255)


class HookOut(BaseModel):
    id: int
    team: str | None
    target: str = Field(description="passwords and secret query values masked")
    kinds: list[str]
    note: str | None
    created_at: datetime
    waiting: int = Field(description="deliveries not yet made")
    failed: int = Field(description="deliveries given up on (`POST /api/v1/hooks/replay`)")


class HookCreated(HookOut):
    secret: str = Field(description="the Standard Webhooks secret, shown this once")


class HookList(BaseModel):
    hooks: list[HookOut]


class DeliveryOut(BaseModel):
    id: int
    hook_id: int
    team: str
    subject: str = Field(description="the CDR's diallogid, or an alert's key")
    version: int
    kind: str
    attempts: int
    last_error: str | None


class FailedList(BaseModel):
    deliveries: list[DeliveryOut]


class ReplayIn(BaseModel):
    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=10_000, description="these deliveries"
    )
    hook: int | None = Field(
        None, ge=1, le=MAX_ID, description="every failed delivery of this hook"
    )
    all: bool = Field(False, description="every failed delivery")


class Replayed(BaseModel):
    replayed: int


class TestSent(BaseModel):
    outcome: str


def _shown(hook: Any, waiting: Any) -> dict[str, Any]:
    return {
        "id": hook.id,
        "team": hook.team,
        "target": shown(hook.target),
        "kinds": list(hook.kinds),
        "note": hook.note,
        "created_at": hook.created_at,
        "waiting": waiting.pending if waiting else 0,
        "failed": waiting.failed if waiting else 0,
    }


@router.get("", response_model=HookList, summary="Every hook, with its deliveries waiting")
def list_hooks(wired: ServicesDep) -> Any:
    backlog = {row.hook_id: row for row in hooks.backlog(wired.engine)}
    found = hooks.active(wired.engine)
    return HookList(hooks=[HookOut(**_shown(h, backlog.get(h.id))) for h in found])


@router.post(
    "",
    status_code=201,
    response_model=HookCreated,
    summary="Subscribe a target to changes; the secret is shown this once",
    responses={400: {"description": "the target or the secret, named"}},
)
async def add_hook(wired: ServicesDep, given: HookIn) -> Any:
    settings = wired.settings
    try:
        made = await run_in_threadpool(
            subscribe,
            wired.engine,
            wired.clock,
            given.target,
            team=given.team,
            kinds=parse_kinds(given.kinds),
            secret=given.secret,
            note=given.note,
            allow_private=settings.allow_private_targets,
        )
    except HookRefused as refused:
        raise HTTPException(400, str(refused)) from None
    return HookCreated(**_shown(made.subscription, None), secret=made.secret)


@router.delete("/{hook_id}", status_code=204, summary="Stop a hook")
def remove_hook(wired: ServicesDep, hook_id: HookId) -> None:
    if not hooks.remove(wired.engine, hook_id, wired.clock()):
        raise HTTPException(404, "no such hook")


@router.post(
    "/{hook_id}/test",
    response_model=TestSent,
    summary="Send a signed `hook.test` message now",
    responses={404: {"description": "no such hook"}, 502: {"description": "the target failed"}},
)
def test_hook(wired: ServicesDep, hook_id: HookId) -> Any:
    settings = wired.settings
    try:
        outcome = send_test(
            wired.engine,
            wired.clock,
            hook_id,
            settings.hook_timeout_seconds,
            settings.allow_private_targets,
        )
    except HookRefused as refused:
        raise HTTPException(404, str(refused)) from None
    except SendFailed as failed:
        raise HTTPException(502, str(failed)) from None
    return TestSent(outcome=outcome)


@router.get("/failed", response_model=FailedList, summary="Deliveries given up on, newest first")
def failed_deliveries(
    wired: ServicesDep,
    hook: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Any:
    found = hooks.failed(wired.engine, hook, limit)
    return FailedList(
        deliveries=[
            DeliveryOut(
                id=d.id,
                hook_id=d.hook_id,
                team=d.team,
                subject=d.subject,
                version=d.version,
                kind=d.kind,
                attempts=d.attempts,
                last_error=d.last_error,
            )
            for d in found
        ]
    )


@router.post("/replay", response_model=Replayed, summary="Make failed deliveries due again")
def replay_deliveries(wired: ServicesDep, given: ReplayIn) -> Any:
    if not (given.ids or given.hook is not None or given.all):
        raise HTTPException(400, "name deliveries (ids), a hook, or all")
    count = hooks.replay(wired.engine, wired.clock(), given.hook, given.ids)
    return Replayed(replayed=count)
