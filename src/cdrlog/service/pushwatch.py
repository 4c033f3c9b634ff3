"""What the Push event URLs see of authentication: pushes without a token, counted by
team so the operator can tell when a team's asterCC has moved to its token, and pushes
refused for their token, counted and logged, never kept with their bodies.

A refusal is logged in one line, at most once a minute per team and answer (the lines
in between are counted in the next): a sender with a wrong token repeats it for every
event of every call, and must not flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cdrlog.service import metrics
from cdrlog.service.clock import Clock
from cdrlog.store import pushauth

log = logging.getLogger(__name__)

MAX_LOG_KEYS = 10_000


class PushWatch:
    """Tallies of tokenless pushes, written to the database every `flush_seconds` by a
    thread of their own (so a push costs no query), and the refusal log's rate limit."""

    def __init__(
        self, engine: Engine, clock: Clock, flush_seconds: float = 2.0, log_seconds: float = 60.0
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.log_seconds = log_seconds
        self._tallies: dict[str, tuple[int, datetime]] = {}
        self._logged: dict[tuple[str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cdrlog-pushwatch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread, and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def tokenless(self, team: str, count: int = 1) -> None:
        """Count `count` events of `team` accepted without a token."""
        now = self.clock()
        label = metrics.team_label(team)
        metrics.TOKENLESS_PUSHES.labels(label).inc(count)
        metrics.TOKENLESS_LAST.labels(label).set(now.timestamp())
        with self._lock:
            before, _ = self._tallies.get(team, (0, now))
            self._tallies[team] = (before + count, now)

    def flush(self) -> None:
        """Write the tallies; while the database is away they wait for the next time."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        try:
            pushauth.add_tokenless(self.engine, tallies)
        except (OperationalError, InterfaceError) as error:
            log.debug("tokenless pushes not written yet: %s", error)
            with self._lock:
                for team, (count, last) in tallies.items():
                    newer, newest = self._tallies.get(team, (0, last))
                    self._tallies[team] = (count + newer, max(last, newest))

    def refused(self, team: str | None, url: str, status: int, reason: str, client: str) -> None:
        """Count a push refused with `status` (401 or 403), and log it within the limit."""
        metrics.PUSHES_REFUSED.labels(metrics.team_label(team), url, str(status)).inc()
        key = (team or "", status)
        now = time.monotonic()
        with self._lock:
            last, skipped = self._logged.get(key, (float("-inf"), 0))
            if now - last < self.log_seconds:
                self._logged[key] = (last, skipped + 1)
                return
            if len(self._logged) >= MAX_LOG_KEYS:
                self._logged.clear()
            self._logged[key] = (now, 0)
        more = f" ({skipped} more like it since the last line)" if skipped else ""
        log.warning(
            "push refused with %d (%s): team %s, %s URL, from %s%s",
            status,
            reason,
            team or "named by the events",
            url,
            client or "an unknown address",
            more,
        )
