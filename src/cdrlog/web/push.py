"""The Push event URLs, `POST /astercc/{team}/events` and `POST /astercc/events`, and
the operator's retry of a dead letter.

Transport only: read the body within its limit and deadline, run it through the intake
pipeline (`cdrlog.service.intake`), and answer. A 200 is sent only after every event
of the body is committed. `pushpath` serves these URLs ahead of the framework;
`push_operations` is their OpenAPI description, kept beside the code that serves them.

Every event of a call center comes this way, so a push is answered as plain ASGI: no
`Request`, no response objects, the headers read once from the scope, and the common
answers encoded once, at import.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from prometheus_client import Counter as Tally
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.bodies import BodyError, Decoded, Item
from cdrlog.core.events import Rejection
from cdrlog.service import metrics
from cdrlog.service.intake import KEPT_OF_OVERSIZE, KEPT_WHOLE, RetryRefused, item_bytes, kept_of
from cdrlog.service.services import Services
from cdrlog.store.deadletters import DeadLetter
from cdrlog.web import schemas
from cdrlog.web.auth import Caller, Pusher, admin_only, caller_of_scope, pushable_team
from cdrlog.web.deps import ServiceApp, ServicesDep
from cdrlog.web.limits import Buckets, retry_after, secured

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


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer to a push, with the headers the guard gives every answer."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    async def __call__(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status, "headers": [*self.headers]}
        await send(start)
        await send({"type": "http.response.body", "body": self.body})


# As `JSONResponse` renders; one encoder, not one made per answer.
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def answer(status: int, content: Any, headers: Mapping[str, str] | None = None) -> Answer:
    """`content` as JSON, headed as a `JSONResponse` under the guard would be."""
    body = _encode(content).encode()
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in (headers or {}).items()
    ]
    raw += [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    return Answer(status, tuple(secured(raw, status, True)), body)


def _answer_of(response: Response) -> Answer:
    """The answer a handler of the app's made."""
    headers = secured(list(response.raw_headers), response.status_code, True)
    return Answer(response.status_code, tuple(headers), bytes(response.body))


ANSWERS = {outcome: answer(200, {"status": outcome.value}) for outcome in Outcome}
NOT_ALLOWED = answer(405, {"detail": "Method Not Allowed"}, {"Allow": "POST"})
TOO_SLOW = answer(408, {"error": "the body took too long to arrive"})
# As `ServerErrorMiddleware` answers an error no handler takes.
SERVER_ERROR = Answer(
    500,
    tuple(
        secured(
            [(b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")],
            500,
            True,
        )
    ),
    b"Internal Server Error",
)
_TOO_MANY = {"status": "rejected", "error": "too many requests from this address; slow down"}


class Counted:
    """Bound label children of a counter, made once per label values: `labels()` takes
    a lock and builds a key on every call."""

    def __init__(self, counter: Tally) -> None:
        self.counter = counter
        self._children: dict[tuple[str, ...], Tally] = {}

    def __call__(self, *values: str) -> Tally:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.counter.labels(*values)
        return child


_received = Counted(metrics.EVENTS_RECEIVED)
_accepted = Counted(metrics.EVENTS_ACCEPTED)


class BodyDeadlines:
    """The deadlines of the bodies being read on one event loop, under one timer.

    `asyncio.timeout` arms and cancels a timer for every request, though nearly every
    push body is whole in its first message and never waits. Reads all take the same
    time, so they are due in the order they began: the timer is set for the first one
    due, and a read that ends just leaves the dict."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.loop = loop
        self.seconds = seconds
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self, task: asyncio.Task[Any]) -> None:
        due = self.loop.time() + self.seconds
        self._reads[task] = due
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._expire)

    def end(self, task: asyncio.Task[Any]) -> None:
        self._reads.pop(task, None)
        if self._expired:
            self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled for being late (asked once, on its cancellation)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return True

    def _expire(self) -> None:
        self._timer = None
        reads = self._reads
        # The loop's clock may be a millisecond behind the timer's own.
        now = self.loop.time() + 0.001
        while reads:
            task, due = next(iter(reads.items()))
            if due > now:
                self._timer = self.loop.call_at(due, self._expire)
                return
            del reads[task]
            self._expired.add(task)
            task.cancel()


class PushReceiver:
    """The Push event URLs as plain ASGI, under the guard's per-address limit (the
    guard's answers and headers included: this path does not pass through it)."""

    def __init__(self, app: ServiceApp, by_address: Buckets) -> None:
        self.app = app
        self.by_address = by_address
        self._deadlines: dict[asyncio.AbstractEventLoop, BodyDeadlines] = {}

    async def __call__(
        self, scope: Scope, receive_message: Receive, send: Send, url_team: str | None
    ) -> None:
        """Answer one request to a Push event URL (`url_team` None: the generic URL)."""
        client = scope.get("client")
        wait = self.by_address.take(client[0] if client else "unknown")
        if wait:
            await answer(429, _TOO_MANY, {"Retry-After": retry_after(wait)})(send)
            return
        if scope["method"] != "POST":
            await NOT_ALLOWED(send)
            return
        try:
            answered = await self._receive(scope, receive_message, url_team)
        except HTTPException as error:
            answered = answer(error.status_code, {"detail": error.detail}, error.headers)
        except Exception as error:
            handled = await self._handled(scope, receive_message, error)
            if handled is None:
                await SERVER_ERROR(send)
                raise
            answered = handled
        await answered(send)

    async def _receive(
        self, scope: Scope, receive_message: Receive, url_team: str | None
    ) -> Answer:
        app = self.app
        wired = app.services
        caller = caller_of_scope(scope)
        try:
            if wired.tokens.answers_from_memory(caller.token):
                pusher = pushable_team(app, caller, url_team)
            else:
                # Off the event loop: a slow or unreachable database must not stall every
                # request.
                pusher = await run_in_threadpool(pushable_team, app, caller, url_team)
        except HTTPException as error:
            _count_refusal(wired, caller, url_team, url_team, error)
            raise
        team = pusher.team
        limit = wired.settings.max_body_bytes
        read = await self._read_within(receive_message, caller.headers, limit)
        if read is None:
            return TOO_SLOW
        body, whole = read
        if not whole or len(body) > limit:
            kept, truncated = kept_of(body, whole)
            reason = {"body": f"is larger than {limit} bytes"}
            await _dead_letter(wired, scope, caller, team, kept, reason, truncated)
            return answer(413, {"error": "body too large", "limit_bytes": limit})
        decoded = wired.intake.decode(body, caller.headers.get("content-type"))
        if isinstance(decoded, BodyError):
            metrics.EVENTS_REJECTED.inc()
            reason = {"body": decoded.message}
            if decoded.status == 413:
                # Kept in part, as an oversized body is: enough to see what was sent.
                kept, truncated = kept_of(body)
                await _dead_letter(wired, scope, caller, team, kept, reason, truncated)
                return answer(413, {"error": decoded.message})
            return _rejected(reason, await _dead_letter(wired, scope, caller, team, body, reason))
        try:
            if decoded.batch:
                return await _batch(wired, scope, caller, pusher, decoded)
            [outcome] = await _store(wired, pusher, decoded.items)
        except TokenNeeded as needed:
            refusal = HTTPException(401, f"team {needed.team!r} needs a push token")
            _count_refusal(wired, caller, url_team, needed.team, refusal)
            return answer(401, {"detail": refusal.detail}, {"WWW-Authenticate": "Bearer"})
        if isinstance(outcome, Rejection):
            # One event this large could never be stored (its fields are bounded): its
            # start shows what was sent, without writing a megabyte per refusal.
            kept, truncated = kept_of(body, keep_whole=KEPT_WHOLE)
            reason = outcome.as_dict()
            letter_id = await _dead_letter(wired, scope, caller, team, kept, reason, truncated)
            return _rejected(reason, letter_id)
        return ANSWERS[outcome]

    async def _read_within(
        self, receive_message: Receive, headers: Mapping[str, str], limit: int
    ) -> tuple[bytes, bool] | None:
        """The body, or its start once it is clearly too big, and whether it is all
        there; None if it did not all come within the body timeout."""
        declared = headers.get("content-length", "")
        # A body declared too big is refused once its start is read (for the dead letter).
        too_big = declared.isdigit() and int(declared) > limit
        stop_after = KEPT_OF_OVERSIZE if too_big else limit
        task = asyncio.current_task()
        assert task is not None, "a push is answered in a task"
        deadlines = self._deadlines_of(task.get_loop())
        cancelling = task.cancelling()
        deadlines.begin(task)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive_message()
                kind = message["type"]
                if kind == "http.request":
                    chunk = message.get("body", b"")
                    more = message.get("more_body", False)
                    if not chunks and not more and len(chunk) <= stop_after:
                        return chunk, True  # nearly every push: one message, one chunk
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > stop_after:
                        return b"".join(chunks), False
                    if not more:
                        return b"".join(chunks), True
                elif kind == "http.disconnect":
                    raise ClientDisconnect()
        except asyncio.CancelledError:
            if deadlines.expired(task) and task.uncancel() <= cancelling:
                return None
            raise
        finally:
            deadlines.end(task)

    def _deadlines_of(self, loop: asyncio.AbstractEventLoop) -> BodyDeadlines:
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            seconds = self.app.services.settings.body_timeout_seconds
            # A loop that closed is not served again: its deadlines go (tests run many).
            for gone in [known for known in self._deadlines if known.is_closed()]:
                del self._deadlines[gone]
            deadlines = self._deadlines[loop] = BodyDeadlines(loop, seconds)
        return deadlines

    async def _handled(
        self, scope: Scope, receive_message: Receive, error: Exception
    ) -> Answer | None:
        """The answer of the app's own handler for `error`'s class, if it has one."""
        handlers = self.app.exception_handlers
        for kind in type(error).__mro__:
            handler = handlers.get(kind)
            if handler is not None and kind is not Exception:
                scope["app"] = self.app
                made = handler(Request(scope, receive_message), error)
                response = await made if inspect.isawaitable(made) else made
                return _answer_of(response)
        return None


class TokenNeeded(Exception):
    """A push without a token, on the shared URL, holds an event of a team whose pushes
    need one: nothing of it is stored."""

    def __init__(self, team: str) -> None:
        super().__init__(team)
        self.team = team


def _count_refusal(
    wired: Services,
    caller: Caller,
    url_team: str | None,
    team: str | None,
    error: HTTPException,
) -> None:
    """Count and log a push refused for its token (a 429 is the limiter's, not this)."""
    if error.status_code in (401, 403):
        url = "team" if url_team else "shared"
        wired.pushes.refused(team, url, error.status_code, str(error.detail), caller.client)


async def _store(
    wired: Services, pusher: Pusher, items: Sequence[Item]
) -> list[Outcome | Rejection]:
    """Check and store a body's events together; each result once it is committed."""
    intake = wired.intake
    checked = [intake.check(pusher.team, item) for item in items]
    if pusher.tokenless and pusher.team is None:
        modes = wired.tokens.push_modes()
        for one in checked:
            if isinstance(one, Accepted) and not modes.of(one.event.team).takes_tokenless:
                raise TokenNeeded(one.event.team)
    began = time.perf_counter()
    outcomes: list[Outcome | Rejection]
    if len(checked) == 1:  # most pushes: no gathering to pay for
        outcomes = [await _stored(wired, checked[0])]
    else:
        outcomes = list(await asyncio.gather(*(_stored(wired, one) for one in checked)))
    metrics.INGEST_SECONDS.observe(time.perf_counter() - began)
    for item, outcome in zip(items, outcomes, strict=True):
        kind = metrics.event_label(item.get("event") if isinstance(item, dict) else None)
        _received(kind).inc()
        if isinstance(outcome, Rejection):
            metrics.EVENTS_REJECTED.inc()
        else:
            _accepted(kind, outcome.value).inc()
    if pusher.tokenless:
        _tally_tokenless(wired, checked, outcomes)
    return outcomes


async def _stored(wired: Services, one: Accepted | Rejection) -> Outcome | Rejection:
    if isinstance(one, Rejection):
        return one
    batcher = wired.batcher
    if batcher is None:  # not serving (an app used without its lifespan)
        [result] = await run_in_threadpool(wired.intake.store_each, [one])
        return result
    return await batcher.store(one)


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
    wired: Services, scope: Scope, caller: Caller, pusher: Pusher, decoded: Decoded
) -> Answer:
    """Every good item is stored even when others are refused; the answer lists both."""
    team = pusher.team
    counts = dict.fromkeys(Outcome, 0)
    refused: list[dict[str, Any]] = []
    outcomes = await _store(wired, pusher, decoded.items)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Rejection):
            raw = item_bytes(decoded.originals[index])
            reason = outcome.as_dict()
            letter_id = await _dead_letter(wired, scope, caller, team, raw, reason)
            refused.append({"index": index, "errors": reason, "dead_letter_id": letter_id})
        else:
            counts[outcome] += 1
    content = {
        "status": "rejected" if refused else "stored",
        "stored": counts[Outcome.STORED],
        "duplicate": counts[Outcome.DUPLICATE],
        "spooled": counts[Outcome.SPOOLED],
        "rejected": refused,
    }
    return answer(400 if refused else 200, content)


async def _dead_letter(
    wired: Services,
    scope: Scope,
    caller: Caller,
    team: str | None,
    body: bytes,
    reason: dict[str, str],
    truncated: bool = False,
) -> int:
    client = scope.get("client")
    letter = DeadLetter(
        path=URL(scope=scope).path,
        team=team,
        content_type=caller.headers.get("content-type"),
        remote_addr=client[0] if client else None,
        body=body,
        truncated=truncated,
        reason=reason,
    )
    return await run_in_threadpool(wired.intake.refuse, letter)


def _rejected(errors: dict[str, str], letter_id: int) -> Answer:
    return answer(400, {"status": "rejected", "errors": errors, "dead_letter_id": letter_id})
