"""Sending push events to a running receiver, the way asterCC does, and timing it.

`send_events` POSTs each event to `{base_url}/astercc/{team}/events`, form-encoded the way
asterCC writes bodies (`form_body`), from `concurrency` workers sharing one pooled
`httpx.AsyncClient`, optionally paced to a rate, and returns a `SendSummary`. Connection
errors and 5xx answers are retried with backoff; a 4xx never is (the receiver has judged
the event, sending it again changes nothing). Retrying a request whose answer was lost
is safe because the receiver treats an exact re-send as a duplicate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Event = Mapping[str, str]
FORM_TYPE = "application/x-www-form-urlencoded"
# What a form value cannot hold raw: the separators, the escape, and `+`, which a form
# decoder reads as a space. asterCC leaves everything else (spaces, `/`, `;`) as it is.
_FORM_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "%&=+"}


class Addressed(Protocol):
    """An event with the team whose push URL it goes to (e.g. `traffic.Delivery`):
    asterCC's own events name no team, the URL does."""

    @property
    def team(self) -> str: ...

    @property
    def event(self) -> Mapping[str, str]: ...


Sendable = Event | Addressed
# Samples of what went wrong, enough to diagnose without flooding the terminal.
_ERROR_SAMPLES = 5


@dataclass(frozen=True, slots=True)
class SendSettings:
    """How to send: where, how many requests in flight, how fast (events/s, 0 = no
    limit), how often to try one event, the first retry's delay (doubling after)."""

    base_url: str
    concurrency: int = 8
    rate: float = 0.0
    max_tries: int = 5
    backoff_seconds: float = 0.2
    timeout_seconds: float = 10.0
    token: str | None = None  # sent as `Authorization: Bearer`, where tokens are required


@dataclass(frozen=True, slots=True)
class SendSummary:
    """What happened to the events. `accepted` = `stored` + `duplicates` (+ 2xx bodies
    naming neither); `rejected` are 4xx answers; `failed` gave up after `max_tries`.
    Latencies are per HTTP request that got an answer, in milliseconds."""

    sent: int
    accepted: int
    stored: int
    duplicates: int
    rejected: int
    failed: int
    retries: int
    concurrency: int
    elapsed_seconds: float
    events_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every event was accepted by the receiver."""
        return self.rejected == 0 and self.failed == 0


@dataclass(slots=True)
class _Tally:
    accepted: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def note_error(self, text: str) -> None:
        if len(self.errors) < _ERROR_SAMPLES:
            self.errors.append(text)


class _Pacer:
    """Spaces request starts `1/rate` seconds apart over all workers; rate 0 never waits."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self._interval:
            return
        # Reserving the slot before sleeping needs no lock: nothing awaits in between.
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


def event_url(base_url: str, event: Event, team: str | None = None) -> str:
    """The push URL of `team`, else of the team `event` names, else the generic one."""
    team = team or event.get("orgidentity", "").strip()
    base = base_url.rstrip("/")
    return f"{base}/astercc/{quote(team, safe='')}/events" if team else f"{base}/astercc/events"


def form_body(event: Event) -> bytes:
    """`event` as asterCC writes a push body: `name=value&` per field, values raw (a
    space in eventTime, `/` and `;` in channel) except for what a form decoder would
    misread, and a trailing `&`."""
    return "".join(
        f"{name.translate(_FORM_ESCAPES)}={value.translate(_FORM_ESCAPES)}&"
        for name, value in event.items()
    ).encode()


def _request(base_url: str, item: Sendable) -> tuple[str, bytes]:
    if isinstance(item, Mapping):
        return event_url(base_url, item), form_body(item)
    return event_url(base_url, item.event, item.team), form_body(item.event)


async def send_events(
    events: Sequence[Sendable],
    settings: SendSettings,
    *,
    on_sent: Callable[[], None] | None = None,
) -> SendSummary:
    """POST every event once (retrying as the module says), in order of the sequence as
    far as `concurrency` allows; `on_sent` is called after each event is settled. An
    event goes to the URL of the team it is `Addressed` to, else of its `orgidentity`."""
    if settings.concurrency < 1 or settings.max_tries < 1 or settings.rate < 0:
        raise ValueError("concurrency and max_tries must be at least 1, rate at least 0")
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in events:
        queue.put_nowait(_request(settings.base_url, item))
    tally, pacer = _Tally(), _Pacer(settings.rate)
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else None
    async with httpx.AsyncClient(
        limits=limits, timeout=settings.timeout_seconds, headers=headers
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                url, body = queue.get_nowait()
                await _deliver(client, url, body, settings, pacer, tally)
                if on_sent is not None:
                    on_sent()

        # A TaskGroup, so that a bug in one worker stops the others before the client closes.
        async with asyncio.TaskGroup() as workers:
            for _ in range(settings.concurrency):
                workers.create_task(worker())
    return _summarize(tally, len(events), settings.concurrency, time.perf_counter() - began)


def run_simulation(
    events: Sequence[Sendable], settings: SendSettings, *, show_progress: bool = False
) -> SendSummary:
    """`send_events` in a fresh event loop, with a transient progress bar on stderr if
    asked (stdout holds the report)."""
    if not show_progress:
        return asyncio.run(send_events(events, settings))
    columns = (
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("send", total=len(events))
        return asyncio.run(send_events(events, settings, on_sent=lambda: progress.advance(task)))


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    settings: SendSettings,
    pacer: _Pacer,
    tally: _Tally,
) -> None:
    problem = ""
    for attempt in range(settings.max_tries):
        if attempt:
            tally.retries += 1
            await asyncio.sleep(settings.backoff_seconds * 2 ** (attempt - 1))
        await pacer.wait()
        began = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers={"content-type": FORM_TYPE})
        except httpx.TransportError as error:
            problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            continue
        tally.latencies.append(time.perf_counter() - began)
        if response.status_code >= 500:
            problem = f"{response.status_code} {_snippet(response)}"
            continue
        _record(tally, response)
        return
    tally.failed += 1
    tally.note_error(f"gave up after {settings.max_tries} tries: {problem}")


def _record(tally: _Tally, response: httpx.Response) -> None:
    code = response.status_code
    if 200 <= code < 300:
        tally.accepted += 1
        status = _json_status(response)
        tally.duplicates += status == "duplicate"
        tally.stored += status == "stored"
    elif 400 <= code < 500:
        tally.rejected += 1
        tally.note_error(f"{code} {_snippet(response)}")
    else:
        tally.failed += 1
        tally.note_error(f"unexpected {code} {_snippet(response)}")


def _json_status(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= 200 else text[:199] + "..."


def _summarize(tally: _Tally, sent: int, concurrency: int, elapsed: float) -> SendSummary:
    latencies = sorted(tally.latencies)
    return SendSummary(
        sent=sent,
        accepted=tally.accepted,
        stored=tally.stored,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        failed=tally.failed,
        retries=tally.retries,
        concurrency=concurrency,
        elapsed_seconds=elapsed,
        events_per_second=sent / elapsed if elapsed > 0 else 0.0,
        latency_p50_ms=_percentile(latencies, 0.50) * 1000,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
        latency_max_ms=latencies[-1] * 1000 if latencies else 0.0,
        errors=tuple(tally.errors),
    )


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values; 0 for none."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_as_dict(summary: SendSummary) -> dict[str, object]:
    """The summary as JSON-ready values, with `ok` included."""
    return {**asdict(summary), "errors": list(summary.errors), "ok": summary.ok}


def render_summary(summary: SendSummary) -> str:
    """A few aligned lines a person reads at a glance, then a sample of the errors."""
    s = summary
    width = len(f"{s.sent:,}")
    workers = "worker" if s.concurrency == 1 else "workers"
    lines = [
        f"Sent {s.sent:,} events in {s.elapsed_seconds:.2f} s ({s.events_per_second:,.1f} "
        f"events/s, {s.concurrency} {workers}, {s.retries:,} retries)",
        f"  accepted  {s.accepted:>{width},}  {s.stored:,} stored, {s.duplicates:,} duplicates",
        f"  rejected  {s.rejected:>{width},}  answered 4xx, not retried",
        f"  failed    {s.failed:>{width},}  no answer after every try",
        f"  latency   p50 {s.latency_p50_ms:.1f} ms, p99 {s.latency_p99_ms:.1f} ms, "
        f"max {s.latency_max_ms:.1f} ms",
    ]
    lines += [f"  ! {error}" for error in s.errors]
    return "\n".join(lines)
