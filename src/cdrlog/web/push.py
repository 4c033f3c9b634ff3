"""The Push event URLs, `POST /astercc/{team}/events` and `POST /astercc/events`, and
the operator's retry of a dead letter.

Transport only: read the body within its limit and deadline, run it through the intake
pipeline (`cdrlog.service.intake`), and answer. A 200 is sent only after every event
of the body is committed. `pushpath` serves these URLs ahead of the framework;
`push_operations` is their OpenAPI description, kept beside the code that serves them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.bodies import BodyError, Decoded, Item
from cdrlog.core.events import Rejection
from cdrlog.service import metrics
from cdrlog.service.intake import KEPT_OF_OVERSIZE, KEPT_WHOLE, RetryRefused, item_bytes, kept_of
from cdrlog.service.services import Services
from cdrlog.store.deadletters import DeadLetter
from cdrlog.web import schemas
from cdrlog.web.auth import Pusher, admin_only, presented, pushable_team
from cdrlog.web.deps import ServicesDep, services

PUSH_ANSWERS: dict[str, dict[str, Any]] = {
    "200": {"description": "every event committed (or spooled, or a duplicate of one)"},
    "400": {"description": "bad fields, each named; the body is kept as a dead letter"},
    "401": {"description": "a token is required, or this one is unknown or revoked"},
    "403": {"description": "this token may not push for this team"},
    "408": {"description": "the body took too long to arrive"},
    "413": {"description": "body larger than the limit"},
    "429": {"description": "too many requests from this address"},
    "503": {"description": "database unreachable and nothing spooled; retry"},
}

router = APIRouter()


def push_operations() -> dict[str, Any]:
    """The OpenAPI paths of the Push event URLs that `receive` serves."""
    team = {"name": "team", "in": "path", "required": True, "schema": {"type": "string"}}

    def operation(summary: str, name: str, parameters: list[Any]) -> dict[str, Any]:
        return {
            "post": {
                "tags": ["push"],
                "summary": summary,
                "operationId": name,
                "parameters": parameters,
                "requestBody": schemas.push_body(),
                "responses": PUSH_ANSWERS,
            }
        }

    return {
        "/astercc/{team}/events": operation(
            "Receive one team's call events (the team's Push event URL)", "push_team", [team]
        ),
        "/astercc/events": operation(
            "Receive call events of any team (taken from the orgidentity field)", "push_any", []
        ),
    }


@router.post(
    "/api/v1/rejected/{letter_id}/retry",
    tags=["operators"],
    response_model=schemas.RetryOut,
    summary="Run a dead letter through the intake pipeline again (after a fix; admin)",
    dependencies=[Depends(admin_only)],
    responses={404: {"description": "no such dead letter"}, 409: {"description": "cannot retry"}},
)
def retry_rejected(
    letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], wired: ServicesDep
) -> schemas.RetryOut:
    letter = wired.reader.dead_letter(letter_id)
    if letter is None:
        raise HTTPException(404, "no such dead letter")
    try:
        retried = wired.intake.retry(letter)
    except RetryRefused as error:
        raise HTTPException(409, str(error)) from error
    return schemas.RetryOut(
        id=retried.id,
        status=retried.status,
        stored=retried.stored,
        duplicate=retried.duplicate,
        errors=retried.errors,
    )


async def receive(request: Request, url_team: str | None) -> JSONResponse:
    """Answer one POST to a Push event URL (`url_team` None: the generic URL)."""
    wired = services(request)
    try:
        if wired.tokens.answers_from_memory(presented(request)[0]):
            pusher = pushable_team(request, url_team)
        else:
            # Off the event loop: a slow or unreachable database must not stall every
            # request.
            pusher = await run_in_threadpool(pushable_team, request, url_team)
    except HTTPException as error:
        _count_refusal(wired, request, url_team, url_team, error)
        raise
    team = pusher.team
    limit = wired.settings.max_body_bytes
    try:
        async with asyncio.timeout(wired.settings.body_timeout_seconds):
            body, whole = await _read_within(request, limit)
    except TimeoutError:
        return JSONResponse({"error": "the body took too long to arrive"}, status_code=408)
    if not whole or len(body) > limit:
        kept, truncated = kept_of(body, whole)
        await _dead_letter(
            wired, request, team, kept, {"body": f"is larger than {limit} bytes"}, truncated
        )
        return JSONResponse({"error": "body too large", "limit_bytes": limit}, status_code=413)
    decoded = wired.intake.decode(body, request.headers.get("content-type"))
    if isinstance(decoded, BodyError):
        metrics.EVENTS_REJECTED.inc()
        reason = {"body": decoded.message}
        if decoded.status == 413:
            # Kept in part, as an oversized body is: enough to see what was sent.
            kept, truncated = kept_of(body)
            await _dead_letter(wired, request, team, kept, reason, truncated)
            return JSONResponse({"error": decoded.message}, status_code=413)
        return _rejected(reason, await _dead_letter(wired, request, team, body, reason))
    try:
        if decoded.batch:
            return await _batch(wired, request, pusher, decoded)
        [outcome] = await _store(wired, pusher, decoded.items)
    except TokenNeeded as needed:
        refusal = HTTPException(401, f"team {needed.team!r} needs a push token")
        _count_refusal(wired, request, url_team, needed.team, refusal)
        return JSONResponse(
            {"detail": refusal.detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    if isinstance(outcome, Rejection):
        # One event this large could never be stored (its fields are bounded): its start
        # shows what was sent, without writing a megabyte per refusal.
        kept, truncated = kept_of(body, keep_whole=KEPT_WHOLE)
        reason = outcome.as_dict()
        return _rejected(reason, await _dead_letter(wired, request, team, kept, reason, truncated))
    return JSONResponse({"status": outcome.value})


class TokenNeeded(Exception):
    """A push without a token, on the shared URL, holds an event of a team whose pushes
    need one: nothing of it is stored."""

    def __init__(self, team: str) -> None:
        super().__init__(team)
        self.team = team


def _count_refusal(
    wired: Services,
    request: Request,
    url_team: str | None,
    team: str | None,
    error: HTTPException,
) -> None:
    """Count and log a push refused for its token (a 429 is the limiter's, not this)."""
    if error.status_code in (401, 403):
        client = request.client.host if request.client else ""
        url = "team" if url_team else "shared"
        wired.pushes.refused(team, url, error.status_code, str(error.detail), client)


async def _store(
    wired: Services, pusher: Pusher, items: Sequence[Item]
) -> list[Outcome | Rejection]:
    """Check and store a body's events together; each result once it is committed."""
    checked = [wired.intake.check(pusher.team, item) for item in items]
    if pusher.tokenless and pusher.team is None:
        modes = wired.tokens.push_modes()
        for one in checked:
            if isinstance(one, Accepted) and not modes.of(one.event.team).takes_tokenless:
                raise TokenNeeded(one.event.team)
    batcher = wired.batcher
    began = time.perf_counter()

    async def stored(one: Accepted | Rejection) -> Outcome | Rejection:
        if isinstance(one, Rejection):
            return one
        if batcher is None:  # not serving (an app used without its lifespan)
            [result] = await run_in_threadpool(wired.intake.store_each, [one])
            return result
        return await batcher.store(one)

    if len(checked) == 1:  # most pushes: no gathering to pay for
        outcomes = [await stored(checked[0])]
    else:
        outcomes = list(await asyncio.gather(*(stored(one) for one in checked)))
    metrics.INGEST_SECONDS.observe(time.perf_counter() - began)
    for item, outcome in zip(items, outcomes, strict=True):
        kind = metrics.event_label(item.get("event") if isinstance(item, dict) else None)
        metrics.EVENTS_RECEIVED.labels(kind).inc()
        if isinstance(outcome, Rejection):
            metrics.EVENTS_REJECTED.inc()
        else:
            metrics.EVENTS_ACCEPTED.labels(kind, outcome.value).inc()
    if pusher.tokenless:
        _tally_tokenless(wired, checked, outcomes)
    return outcomes


def _tally_tokenless(
    wired: Services, checked: Sequence[Accepted | Rejection], outcomes: Sequence[Any]
) -> None:
    """Count the events taken without a token, by team, for the rollout's progress."""
    teams = Counter(
        one.event.team
        for one, outcome in zip(checked, outcomes, strict=True)
        if isinstance(one, Accepted) and not isinstance(outcome, Rejection)
    )
    for team, count in teams.items():
        wired.pushes.tokenless(team, count)


async def _batch(
    wired: Services, request: Request, pusher: Pusher, decoded: Decoded
) -> JSONResponse:
    """Every good item is stored even when others are refused; the answer lists both."""
    team = pusher.team
    counts = dict.fromkeys(Outcome, 0)
    refused: list[dict[str, Any]] = []
    outcomes = await _store(wired, pusher, decoded.items)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Rejection):
            raw = item_bytes(decoded.originals[index])
            reason = outcome.as_dict()
            letter_id = await _dead_letter(wired, request, team, raw, reason)
            refused.append({"index": index, "errors": reason, "dead_letter_id": letter_id})
        else:
            counts[outcome] += 1
    answer = {
        "status": "rejected" if refused else "stored",
        "stored": counts[Outcome.STORED],
        "duplicate": counts[Outcome.DUPLICATE],
        "spooled": counts[Outcome.SPOOLED],
        "rejected": refused,
    }
    return JSONResponse(answer, status_code=400 if refused else 200)


async def _read_within(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, or its start once it is clearly too big; and whether it is all there."""
    declared = request.headers.get("content-length", "")
    # A body declared too big is refused once its start is read (for the dead letter).
    too_big = declared.isdigit() and int(declared) > limit
    stop_after = KEPT_OF_OVERSIZE if too_big else limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > stop_after:
            return b"".join(chunks), False
    return b"".join(chunks), True


async def _dead_letter(
    wired: Services,
    request: Request,
    team: str | None,
    body: bytes,
    reason: dict[str, str],
    truncated: bool = False,
) -> int:
    letter = DeadLetter(
        path=request.url.path,
        team=team,
        content_type=request.headers.get("content-type"),
        remote_addr=request.client.host if request.client else None,
        body=body,
        truncated=truncated,
        reason=reason,
    )
    return await run_in_threadpool(wired.intake.refuse, letter)


def _rejected(errors: dict[str, str], letter_id: int) -> JSONResponse:
    return JSONResponse(
        {"status": "rejected", "errors": errors, "dead_letter_id": letter_id}, status_code=400
    )
