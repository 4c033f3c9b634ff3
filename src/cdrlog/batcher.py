"""Group commit: events that arrive together are stored in one transaction.

Each request hands its event to a writer thread and waits for that event's own
commit, so "200 means durable" holds per event. A writer takes everything queued when
it wakes, up to `max_batch`, and never waits for company: a lone event under light
load is committed at once, while under load one commit (one fsync) serves many.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from cdrlog.ingest import Accepted, Ingestor, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    accepted: Accepted
    done: Future[Outcome]


_STOP = None


class Batcher:
    def __init__(self, ingestor: Ingestor, *, writers: int = 4, max_batch: int = 256) -> None:
        self.ingestor = ingestor
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._write, name=f"cdrlog-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    async def store(self, accepted: Accepted) -> Outcome:
        """Returns once `accepted` is committed (or raises what storing it raised)."""
        done: Future[Outcome] = Future()
        self._queue.put(_Pending(accepted, done))
        return await asyncio.wrap_future(done)

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
        try:
            outcomes = self.ingestor.ingest_many([p.accepted for p in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0].done.set_exception(error)
                return
            # One event must not fail its neighbours: store them one by one instead.
            log.warning(
                "a batch of %d failed (%s); storing its events one by one", len(batch), error
            )
            for pending in batch:
                self._commit([pending])
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.done.set_result(outcome)
