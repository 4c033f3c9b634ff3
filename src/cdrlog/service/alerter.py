"""The alerter: every few seconds, measures what each alert rule watches and raises or
clears its alert, announcing each change through the outbox to the hooks that take it.

Every serving process runs one, in a thread of its own (a slow query holds up neither
ingest nor the dispatcher). They all evaluate every rule; the store lets exactly one of
them make, and announce, each raise and each clear (`store.alerts.change`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from cdrlog.core.alerts import Alert, Decision, decide, kind_of, measured
from cdrlog.core.hooks import Subscription
from cdrlog.service.clock import Clock
from cdrlog.service.hookwatch import HookWatch
from cdrlog.store import alerts

log = logging.getLogger("cdrlog.alerts")


@dataclass(frozen=True, slots=True)
class Changed:
    """A raise or clear this evaluator made (and announced, if a hook takes it)."""

    rule_id: int
    kind: str
    version: int
    value: float | None


class Alerter:
    def __init__(
        self,
        engine: Engine,
        watch: HookWatch,
        clock: Clock,
        *,
        every: float,
        longest_call: timedelta,
    ) -> None:
        self.engine = engine
        self.watch = watch
        self.clock = clock
        self.every = every
        # Calls open longer are past the longest a call may last: not waiting any more.
        self.longest_call = longest_call
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cdrlog-alerts", daemon=True)
        self._thread.start()

    def close(self, wait: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.evaluate()
            except Exception:  # the database away: try again next time, never stop
                log.exception("alerts: evaluating the rules failed")

    def evaluate(self) -> list[Changed]:
        """Evaluate every rule once, now; the changes this call made."""
        found = alerts.watched(self.engine)
        if not found:
            return []
        at = self.clock()
        figures = alerts.measure(self.engine, [a.rule for a in found], at, self.longest_call)
        # Read outside the transactions below, as every writer of the outbox does.
        subscriptions = self.watch.subscriptions()
        changed: list[Changed] = []
        noted: list[tuple[int, float | None]] = []
        for alert in found:
            value = measured(alert.rule, figures)
            decision = decide(alert.rule, alert.state.raised, value)
            if decision is Decision.NOTHING:
                if value != alert.state.value:
                    noted.append((alert.rule.id, value))
                continue
            made = self._change(alert, decision, value, at, subscriptions)
            if made is not None:
                changed.append(made)
        alerts.note_values(self.engine, noted, at)
        return changed

    def _change(
        self,
        alert: Alert,
        decision: Decision,
        value: float | None,
        at: datetime,
        subscriptions: tuple[Subscription, ...],
    ) -> Changed | None:
        rule, kind = alert.rule, kind_of(decision)
        # Announced only to a hook that takes it: the outbox holds nothing nobody sends.
        announce = any(hook.wants(rule.team, kind) for hook in subscriptions)
        after = alerts.change(self.engine, rule, alert.state, decision, value, at, announce)
        if after is None:  # another process made this change first, and announced it
            return None
        log.warning(
            "alert %s: rule %s (%s %s, team %s, queue %s) at %s",
            "raised" if after.raised else "cleared",
            rule.id,
            rule.metric.value,
            rule.threshold,
            rule.team,
            rule.queue or "all",
            value,
        )
        return Changed(rule.id, kind.value, after.version, value)
