"""POST /astercc/{team}/events and POST /astercc/events: the Push event URL.

Transport only: read the body within its limit, decode it, check each event, hand
the good ones to the ingestor and the bad ones to the dead letters, and answer. A 200
is sent only after every event of the body is committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException
from starlette.types import Message

from cdrlog.bodies import BodyError, Item, decode_form, decode_json, fields_of, is_json, media_type
from cdrlog.events import Rejection, fingerprint, parse_event
from cdrlog.ingest import Accepted, DeadLetter, Ingestor, Outcome
from cdrlog.settings import Settings

# What a 413's dead letter keeps of an oversized body: enough to see what it was.
KEPT_OF_OVERSIZE = 64 * 1024

router = APIRouter(tags=["push"])


@dataclass(frozen=True, slots=True)
class Receiver:
    settings: Settings
    ingestor: Ingestor


@router.post(
    "/astercc/{team}/events",
    summary="Receive one team's call events (the team's Push event URL)",
    responses={400: {"description": "bad fields, named"}, 413: {"description": "body too big"}},
)
async def push_team(team: str, request: Request) -> JSONResponse:
    return await receive(request, team)


@router.post(
    "/astercc/events",
    summary="Receive call events of any team (taken from the orgidentity field)",
    responses={400: {"description": "bad fields, named"}, 413: {"description": "body too big"}},
)
async def push_any(request: Request) -> JSONResponse:
    return await receive(request, None)


async def receive(request: Request, team: str | None) -> JSONResponse:
    receiver: Receiver = request.app.state.receiver
    limit = receiver.settings.max_body_bytes
    body, complete = await _read_within(request, limit)
    if not complete:
        reason = {"body": f"is larger than {limit} bytes"}
        await _dead_letter(receiver, request, team, body[:KEPT_OF_OVERSIZE], reason, True)
        return JSONResponse({"error": "body too large", "limit_bytes": limit}, status_code=413)
    items = await _decode(request, body)
    if isinstance(items, BodyError):
        letter_id = await _dead_letter(receiver, request, team, body, {"body": items.message})
        return _rejected({"body": items.message}, letter_id)
    is_batch = is_json(request.headers.get("content-type"), body) and body.lstrip()[:1] == b"["
    if not is_batch:
        return await _single(receiver, request, team, items[0], body)
    return await _batch(receiver, request, team, items)


async def _single(
    receiver: Receiver, request: Request, team: str | None, item: Item, body: bytes
) -> JSONResponse:
    outcome = await _process(receiver, team, item)
    if isinstance(outcome, Rejection):
        letter_id = await _dead_letter(receiver, request, team, body, outcome.as_dict())
        return _rejected(outcome.as_dict(), letter_id)
    return JSONResponse({"status": outcome.value})


async def _batch(
    receiver: Receiver, request: Request, team: str | None, items: list[Item]
) -> JSONResponse:
    """Every good item is stored even when others are refused; the answer lists both."""
    counts = {Outcome.STORED: 0, Outcome.DUPLICATE: 0}
    refused: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        outcome = await _process(receiver, team, item)
        if isinstance(outcome, Rejection):
            raw = json.dumps(item if isinstance(item, dict) else {}, ensure_ascii=True)
            reason = outcome.as_dict()
            letter_id = await _dead_letter(receiver, request, team, raw.encode(), reason)
            refused.append({"index": index, "errors": reason, "dead_letter_id": letter_id})
        else:
            counts[outcome] += 1
    answer = {
        "status": "rejected" if refused else "stored",
        "stored": counts[Outcome.STORED],
        "duplicate": counts[Outcome.DUPLICATE],
        "rejected": refused,
    }
    return JSONResponse(answer, status_code=400 if refused else 200)


async def _process(receiver: Receiver, team: str | None, item: Item) -> Outcome | Rejection:
    if isinstance(item, Rejection):
        return item
    parsed = parse_event(item, url_team=team, pbx_timezone=receiver.settings.pbx_zone)
    if isinstance(parsed, Rejection):
        return parsed
    accepted = Accepted(event=parsed, fields=item, fingerprint=fingerprint(parsed.team, item))
    return await run_in_threadpool(receiver.ingestor.ingest, accepted)


async def _read_within(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, and whether it fits the limit (reading stops soon after it does not)."""
    declared = request.headers.get("content-length", "")
    chunks: list[bytes] = []
    size = 0
    if declared.isdigit() and int(declared) > limit:
        return b"", False
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
    return b"".join(chunks), True


async def _decode(request: Request, body: bytes) -> list[Item] | BodyError:
    content_type = request.headers.get("content-type")
    if is_json(content_type, body):
        return decode_json(body)
    if media_type(content_type) == "multipart/form-data":
        return await _decode_multipart(request, body)
    return decode_form(body)


async def _decode_multipart(request: Request, body: bytes) -> list[Item] | BodyError:
    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(request.scope, replay).form() as form:
            return [fields_of(_last_values(form))]
    except (MultiPartException, ValueError) as error:
        return BodyError(f"multipart body cannot be read: {error}")


def _last_values(form: FormData) -> dict[str, Any]:
    return dict(form.multi_items())


async def _dead_letter(
    receiver: Receiver,
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
    return await run_in_threadpool(receiver.ingestor.dead_letter, letter)


def _rejected(errors: dict[str, str], letter_id: int) -> JSONResponse:
    return JSONResponse(
        {"status": "rejected", "errors": errors, "dead_letter_id": letter_id}, status_code=400
    )
