"""Retention while serving (`--retain-days`): what is older than the limit is purged
once an hour, by a thread of the serving process."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from cdrlog.service.clock import Clock
from cdrlog.store.purge import PurgeCounts, purge

log = logging.getLogger(__name__)

EVERY_SECONDS = 3600.0


class Retention:
    """Deletes calls (CDRs and their journal rows) and dead letters older than `days`
    days, as `cdrlog purge --older-than DAYS` does: once at start, then every `every`
    seconds. Every receiver of a database may run one: a purge takes each call's lock
    as ingest does, and one that finds its rows gone counts nothing."""

    def __init__(
        self, engine: Engine, clock: Clock, days: int, *, every: float = EVERY_SECONDS
    ) -> None:
        if days < 1:
            raise ValueError("days must be at least 1")
        self.engine = engine
        self.clock = clock
        self.days = days
        self.every = every
        self.runs = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cdrlog-retention", daemon=True)
        self._thread.start()

    def purge_now(self) -> PurgeCounts:
        """One purge of what is older than `days` days before now; it stops between two
        batches once `close` is called."""
        cut = self.clock() - timedelta(days=self.days)
        return purge(self.engine, cut, keep_going=lambda: not self._stopping.is_set())

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop, after the batch in progress (a short transaction) commits."""
        self._stopping.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                counts = self.purge_now()
            except DBAPIError as error:
                # The database is away or busy: nothing is lost by waiting for the next run.
                log.warning("retention: purge failed, next try in %.0f s: %s", self.every, error)
            else:
                self.runs += 1
                if counts.cdr or counts.call_event or counts.dead_letter:
                    log.info(
                        "retention: deleted %d CDRs, %d journal rows, %d dead letters "
                        "older than %d days",
                        counts.cdr,
                        counts.call_event,
                        counts.dead_letter,
                        self.days,
                    )
            self._stopping.wait(self.every)
