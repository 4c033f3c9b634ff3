"""POST /astercc/{team}/events and POST /astercc/events: the Push event URL; and the
operator's retry of a dead letter, which runs a kept body through the same pipeline.

Transport only: read the body within its limit, decode it, check each event, hand
the good ones to the ingestor and the bad ones to the dead letters, and answer. A 200
is sent only after every event of the body is committed.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from python_multipart import parse_form
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import Field, File
from starlette.concurrency import run_in_threadpool

from cdrlog.core.bodies import (
    MAX_FORM_FIELDS,
    BodyError,
    Decoded,
    Item,
    decode_form,
    decode_json,
    is_json,
    media_type,
    text_fields,
)
from cdrlog.core.events import FieldError, Rejection, fingerprint, parse_event
from cdrlog.service import metrics
from cdrlog.service.batcher import Batcher
from cdrlog.service.ingest import Accepted, DeadLetter, Ingestor, Outcome
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.reader import Reader
from cdrlog.web import schemas
from cdrlog.web.auth import admin_only, presented, pushable_team

# What a 413's dead letter keeps of an oversized body: enough to see what it was.
KEPT_OF_OVERSIZE = 64 * 1024
KEPT_WHOLE = 256 * 1024
PUSH_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad fields, each named; the body is kept as a dead letter"},
    413: {"description": "body larger than the limit"},
    503: {"description": "database unreachable; nothing stored, retry"},
}

router = APIRouter()


class RetryRefused(Exception):
    """A dead letter that cannot be retried (kept only in part, or resolved already)."""


@dataclass(frozen=True, slots=True)
class Receiver:
    """Decoding, checking and storing push bodies, for HTTP and for retries alike."""

    settings: Settings
    ingestor: Ingestor

    def decode(self, body: bytes, content_type: str | None) -> Decoded | BodyError:
        if is_json(content_type, body):
            return decode_json(body, self.settings.max_batch_events)
        if media_type(content_type) == "multipart/form-data":
            return _decode_multipart(body, content_type or "")
        return decode_form(body)

    def check(self, team: str | None, item: Item) -> Accepted | Rejection:
        if isinstance(item, Rejection):
            return item
        parsed = parse_event(item, url_team=team, pbx_timezone=self.settings.pbx_zone)
        if isinstance(parsed, Rejection):
            return parsed
        return Accepted(event=parsed, fields=item, fingerprint=fingerprint(parsed.team, item))

    def process(self, team: str | None, item: Item) -> Outcome | Rejection:
        """Check one event and store it (blocking until committed)."""
        checked = self.check(team, item)
        return checked if isinstance(checked, Rejection) else self.ingestor.ingest(checked)

    async def store(
        self, request: Request, team: str | None, items: Sequence[Item]
    ) -> list[Outcome | Rejection]:
        """Check and store a body's events together; each outcome once it is committed."""
        checked = [self.check(team, item) for item in items]
        batcher: Batcher | None = getattr(request.app.state, "batcher", None)
        began = time.perf_counter()

        async def stored(one: Accepted | Rejection) -> Outcome | Rejection:
            if isinstance(one, Rejection):
                return one
            if batcher is None:
                return await run_in_threadpool(self.ingestor.ingest, one)
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
                metrics.EVENTS_STORED.labels(kind, outcome.value).inc()
        return outcomes


@router.post(
    "/astercc/{team}/events",
    tags=["push"],
    summary="Receive one team's call events (the team's Push event URL)",
    responses=PUSH_ANSWERS,
    openapi_extra={"requestBody": schemas.push_body()},
)
async def push_team(team: str, request: Request) -> JSONResponse:
    return await receive(request, team)


@router.post(
    "/astercc/events",
    tags=["push"],
    summary="Receive call events of any team (taken from the orgidentity field)",
    responses=PUSH_ANSWERS,
    openapi_extra={"requestBody": schemas.push_body()},
)
async def push_any(request: Request) -> JSONResponse:
    return await receive(request, None)


@router.post(
    "/api/v1/rejected/{letter_id}/retry",
    tags=["operators"],
    response_model=schemas.RetryOut,
    summary="Run a dead letter through the receiver again (after a fix; admin)",
    dependencies=[Depends(admin_only)],
    responses={404: {"description": "no such dead letter"}, 409: {"description": "cannot retry"}},
)
def retry_rejected(
    letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request
) -> schemas.RetryOut:
    receiver: Receiver = request.app.state.receiver
    reader: Reader = request.app.state.reader
    letter = reader.dead_letter(letter_id)
    if letter is None:
        raise HTTPException(404, "no such dead letter")
    try:
        return retry(receiver, letter)
    except RetryRefused as error:
        raise HTTPException(409, str(error)) from error


def retry(receiver: Receiver, letter: dict[str, Any]) -> schemas.RetryOut:
    """Store what the kept body now yields; mark the letter resolved if all of it was."""
    if letter["truncated"]:
        raise RetryRefused("only the start of this body was kept; it cannot be retried")
    if letter["resolved_at"] is not None:
        raise RetryRefused(f"already resolved: {letter['resolution']}")
    decoded = receiver.decode(letter["raw_body"], letter["content_type"])
    if isinstance(decoded, BodyError):
        return schemas.RetryOut(
            id=letter["id"],
            status="rejected",
            stored=0,
            duplicate=0,
            errors={"body": decoded.message},
        )
    counts = dict.fromkeys(Outcome, 0)
    errors: dict[str, Any] = {}
    for index, item in enumerate(decoded.items):
        outcome = receiver.process(letter["orgidentity"], item)
        if isinstance(outcome, Rejection):
            errors[str(index)] = outcome.as_dict()
        else:
            counts[outcome] += 1
    stored, duplicate = counts[Outcome.STORED], counts[Outcome.DUPLICATE]
    if not errors:
        resolution = f"retried: {stored} stored, {duplicate} duplicate"
        receiver.ingestor.resolve_dead_letter(letter["id"], resolution)
    status = "rejected" if errors else "resolved"
    return schemas.RetryOut(
        id=letter["id"], status=status, stored=stored, duplicate=duplicate, errors=errors
    )


async def receive(request: Request, url_team: str | None) -> JSONResponse:
    tokens: TokenStore = request.app.state.tokens
    if tokens.answers_from_memory(presented(request)[0]):
        team = pushable_team(request, url_team)
    else:
        # Off the event loop: a slow or unreachable database must not stall every request.
        team = await run_in_threadpool(pushable_team, request, url_team)
    receiver: Receiver = request.app.state.receiver
    limit = receiver.settings.max_body_bytes
    try:
        async with asyncio.timeout(receiver.settings.body_timeout_seconds):
            body, whole = await _read_within(request, limit)
    except TimeoutError:
        return JSONResponse({"error": "the body took too long to arrive"}, status_code=408)
    if not whole or len(body) > limit:
        reason = {"body": f"is larger than {limit} bytes"}
        kept = body[:KEPT_OF_OVERSIZE]
        truncated = not whole or len(kept) < len(body)
        await _dead_letter(receiver, request, team, kept, reason, truncated)
        return JSONResponse({"error": "body too large", "limit_bytes": limit}, status_code=413)
    decoded = receiver.decode(body, request.headers.get("content-type"))
    if isinstance(decoded, BodyError):
        metrics.EVENTS_REJECTED.inc()
        if decoded.status == 413:
            # Kept in part, as an oversized body is: enough to see what was sent.
            kept, reason = body[:KEPT_OF_OVERSIZE], {"body": decoded.message}
            await _dead_letter(receiver, request, team, kept, reason, len(body) > len(kept))
            return JSONResponse({"error": decoded.message}, status_code=413)
        letter_id = await _dead_letter(receiver, request, team, body, {"body": decoded.message})
        return _rejected({"body": decoded.message}, letter_id)
    if decoded.batch:
        return await _batch(receiver, request, team, decoded)
    [outcome] = await receiver.store(request, team, decoded.items)
    if isinstance(outcome, Rejection):
        # One event this large could never be stored (its fields are bounded): its start
        # shows what was sent, without writing a megabyte per refusal.
        kept = body if len(body) <= KEPT_WHOLE else body[:KEPT_OF_OVERSIZE]
        reason = outcome.as_dict()
        letter_id = await _dead_letter(receiver, request, team, kept, reason, kept != body)
        return _rejected(reason, letter_id)
    return JSONResponse({"status": outcome.value})


async def _batch(
    receiver: Receiver, request: Request, team: str | None, decoded: Decoded
) -> JSONResponse:
    """Every good item is stored even when others are refused; the answer lists both."""
    counts = dict.fromkeys(Outcome, 0)
    refused: list[dict[str, Any]] = []
    outcomes = await receiver.store(request, team, decoded.items)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Rejection):
            raw = json.dumps(decoded.originals[index], ensure_ascii=True)
            reason = outcome.as_dict()
            letter_id = await _dead_letter(receiver, request, team, raw.encode(), reason)
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


class _TooManyFields(Exception):
    pass


def _decode_multipart(body: bytes, content_type: str) -> Decoded | BodyError:
    pairs: list[tuple[bytes, bytes]] = []
    files: list[str] = []

    def on_field(field: Field) -> None:
        if len(pairs) == MAX_FORM_FIELDS:
            raise _TooManyFields
        pairs.append((field.field_name or b"", field.value or b""))

    def on_file(upload: File) -> None:
        files.append((upload.field_name or b"").decode("utf-8", errors="replace"))
        upload.close()

    headers = {"Content-Type": content_type.encode("latin-1", errors="replace")}
    try:
        parse_form(headers, io.BytesIO(body), on_field, on_file)
    except _TooManyFields:
        return BodyError(f"more than {MAX_FORM_FIELDS} fields", 413)
    except (FormParserError, ValueError) as error:
        return BodyError(f"multipart body cannot be read: {error}")
    if files:
        refusal = Rejection(tuple(FieldError(n, "must be a text field, not a file") for n in files))
        return Decoded([refusal])
    return Decoded([text_fields(pairs)])


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
