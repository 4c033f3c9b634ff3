"""Group commit: events that arrive together are stored in one transaction.

Each request hands its event to a writer thread and waits for that event's own
commit, so "200 means durable" holds per event. A writer takes everything queued when
it wakes, up to `max_batch`, and never waits for company: a lone event under light
load is committed at once, while under load one commit (one fsync) serves many.

When the database cannot be reached, batches go to the spool instead (fsynced: still
durable) until a drain has emptied it and the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cdrlog.core.accepted import Accepted, Outcome
from cdrlog.core.events import FieldError, Rejection
from cdrlog.service import metrics
from cdrlog.service.intake import JSON_TYPE, OUTAGE, Intake, item_bytes
from cdrlog.service.spool import Spool, SpooledEvent, SpoolUnavailable
from cdrlog.store.deadletters import DeadLetter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    accepted: Accepted
    done: asyncio.Future[Outcome | Rejection]
    loop: asyncio.AbstractEventLoop


Result = Outcome | Rejection | BaseException


_STOP = None


class Batcher:
    """Writer threads that store what requests hand them, a batch per transaction,
    through the intake's isolation policy (`Intake.store_each`)."""

    def __init__(
        self,
        intake: Intake,
        *,
        writers: int = 4,
        max_batch: int = 256,
        spool: Spool | None = None,
    ) -> None:
        self.intake = intake
        self.max_batch = max_batch
        self.spool = spool
        # Set while the database is away: batches go straight to the spool meanwhile.
        self.degraded = threading.Event()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._write, name=f"cdrlog-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    async def store(self, accepted: Accepted) -> Outcome | Rejection:
        """Returns once `accepted` is committed, or refused by the database (or raises
        what storing it raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome | Rejection] = loop.create_future()
        self._queue.put(_Pending(accepted, done, loop))
        return await done

    def close(self) -> None:
        """Store everything queued, then stop the writers."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _write(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is _STOP:
                    self._queue.put(_STOP)  # for this thread's next turn
                    break
                batch.append(following)
            self._commit(batch)

    def _commit(self, batch: Sequence[_Pending]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        if self.spool is not None and self.degraded.is_set():
            self._spool(batch, self.spool)
            return
        try:
            results: list[Result] = list(self.intake.store_each([p.accepted for p in batch]))
        except OUTAGE as error:
            if self.spool is None:
                _settle(batch, [error] * len(batch))
                return
            log.warning("database unreachable (%s); spooling until it is back", error)
            self.degraded.set()
            self._spool(batch, self.spool)
            return
        except Exception as error:
            # An event that failed alone after its batch did: every request of the batch
            # answers 500 (those already stored are duplicates when re-sent), and the
            # writer lives on.
            results = [error] * len(batch)
        _settle(batch, results)

    def _spool(self, batch: Sequence[_Pending], spool: Spool) -> None:
        try:
            spool.append([p.accepted for p in batch])
        except SpoolUnavailable as error:
            _settle(batch, [error] * len(batch))
            return
        _settle(batch, [Outcome.SPOOLED] * len(batch))

    def drain(self) -> int:
        """Store what the spool holds; clears `degraded` once it is empty and the
        database answers. Raises the database's error while it is still away."""
        if self.spool is None:
            return 0
        drained = self.spool.drain(self._store_spooled)
        if self.degraded.is_set():
            self.intake.ingestor.ping()
            if self.spool.depth() == 0:
                self.degraded.clear()
                log.warning("database back; the spool is drained")
        return drained

    def _store_spooled(self, events: list[SpooledEvent]) -> None:
        checked = [self.intake.check(event.team, event.fields) for event in events]
        accepted = [
            (e, one) for e, one in zip(events, checked, strict=True) if isinstance(one, Accepted)
        ]
        outcomes = iter(self._stored_or_refused([one for _, one in accepted]))
        for event, one in zip(events, checked, strict=True):
            result = next(outcomes) if isinstance(one, Accepted) else one
            if isinstance(result, Rejection):
                # Accepted before, refused now (a setting changed): keep it for an operator.
                self.intake.refuse(_spooled_letter(event, result))

    def _stored_or_refused(self, accepted: list[Accepted]) -> list[Outcome | Rejection]:
        """Store spooled events; one the database fails to store for any reason but an
        outage is refused (and so kept as a dead letter), instead of failing every
        drain after it, forever."""
        try:
            return self.intake.store_each(accepted)
        except OUTAGE:
            raise
        except Exception as error:
            if len(accepted) > 1:
                return [r for one in accepted for r in self._stored_or_refused([one])]
            log.error("a spooled event could not be stored (%r); kept as a dead letter", error)
            reason = f"the database could not store it: {type(error).__name__}"
            return [Rejection((FieldError("event", reason),))]


def _settle(batch: Sequence[_Pending], results: Sequence[Result]) -> None:
    """Hand each waiting request its result: one wake-up of each event loop per batch,
    not one per event."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Result]]] = {}
    for pending, result in zip(batch, results, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending, result))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[_Pending, Result]]) -> None:
    for pending, result in settled:
        if pending.done.done():  # the request went away meanwhile
            continue
        if isinstance(result, BaseException):
            pending.done.set_exception(result)
        else:
            pending.done.set_result(result)


def _spooled_letter(event: SpooledEvent, rejection: Rejection) -> DeadLetter:
    path = f"/astercc/{event.team}/events"
    body = item_bytes(event.fields)
    return DeadLetter(path, event.team, JSON_TYPE, None, body, False, rejection.as_dict())
