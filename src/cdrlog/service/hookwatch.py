"""Which subscriptions exist, as every writer of CDRs needs to know: a change is
announced in the outbox only while some hook could want it, so that an install without
hooks pays nothing for them. Read again every few seconds, so a hook added by
`cdrlog hooks add` in another process is served within seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from cdrlog.core.hooks import Subscription
from cdrlog.store import hooks

REFRESH_SECONDS = 2.0


class HookWatch:
    def __init__(
        self,
        engine: Engine,
        every: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.every = every
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._held: tuple[Subscription, ...] = ()
        self._teams: frozenset[str | None] = frozenset()

    def subscriptions(self) -> tuple[Subscription, ...]:
        """The active hooks, at most `every` seconds old."""
        stale = self._read_at is None or self.monotonic() - self._read_at >= self.every
        # One reader at a time; the others keep using what was read last.
        if stale and self._lock.acquire(blocking=self._read_at is None):
            try:
                self.refresh()
            finally:
                self._lock.release()
        return self._held

    def refresh(self) -> None:
        held = tuple(hooks.active(self.engine))
        self._held, self._teams = held, frozenset(hook.team for hook in held)
        self._read_at = self.monotonic()

    def wants(self, team: str) -> bool:
        """Whether any hook takes this team's changes (of any kind), as last read: it
        reads nothing, so a writer asks it inside its transaction (having called
        `subscriptions` before, outside)."""
        return None in self._teams or team in self._teams
