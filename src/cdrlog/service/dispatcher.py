"""The dispatcher: hands the outbox on to each hook's deliveries and sends them.

It runs in a thread of its own with its own event loop, so that neither a slow receiver
nor a slow database holds up ingest. Each hook has its own task and its own sender: a
dead receiver delays nobody else's deliveries. A hook's deliveries are claimed for a
lease (several dispatchers, in several processes, share the work and never send one
delivery at once), sent a few at a time, and each ends delivered, retried later with
exponential backoff and jitter, or, after `retry_for`, failed and kept.

A CDR's delivery sends the CDR as it is when sent: its version is read with it, so a
version superseded before it went out is skipped and the newest goes instead, and a
delivery never sends an older version after a newer one (`sent_version`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from cdrlog.core.hooks import (
    FIRST_RETRY_SECONDS,
    Subscription,
    cdr_kind,
    retry_delay,
    webhook_id,
)
from cdrlog.service import metrics
from cdrlog.service.clock import Clock
from cdrlog.service.hookwatch import HookWatch
from cdrlog.service.senders import Message, Sender, SendFailed, body_of, sender_for
from cdrlog.store import hooks, outbox
from cdrlog.store.hooks import Delivery

log = logging.getLogger("cdrlog.hooks")

HAND_ON_BATCH = 500
CLAIM_BATCH = 64
IN_FLIGHT = 8  # per hook
POLL_SECONDS = 0.25
FIGURES_EVERY = 5.0
PRUNE_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A CDR as the API shows it, with its version and status read in the same row."""

    version: int
    status: str
    data: Any


# A CDR's id to its current state (None: gone); the web layer supplies it, so that a
# hook receives exactly what `GET /api/v1/cdrs/{id}` shows.
Renderer = Callable[[int], Rendered | None]


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        watch: HookWatch,
        render: Renderer,
        clock: Clock,
        *,
        retry_for: timedelta,
        timeout: float,
        allow_private: bool,
        poll: float = POLL_SECONDS,
        first_retry: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self.engine = engine
        self.watch = watch
        self.render = render
        self.clock = clock
        self.retry_for = retry_for
        self.timeout = timeout
        self.allow_private = allow_private
        self.poll = poll
        self.first_retry = first_retry
        # A lease outlasts a whole claimed batch (its acks are written together at its
        # end): a live dispatcher never loses what it holds, so no other sends a newer
        # version of a CDR while an older one of it is still on its way.
        self.lease = timedelta(seconds=timeout * (CLAIM_BATCH // IN_FLIGHT + 1) + 10)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set from `close`, in the loop's own thread: a pause between rounds ends at once.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="cdrlog-hooks", daemon=True)
        self._thread.start()

    def close(self, wait: float = 10.0) -> None:
        self._stop.set()
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(woken.set)
        if self._thread is not None:
            self._thread.join(wait)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _pause(self) -> None:
        """`poll` seconds between rounds, or until `close`."""
        if self._woken is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.poll)

    async def _run(self) -> None:
        self._woken = asyncio.Event()
        self._loop = loop = asyncio.get_running_loop()
        if self._stop.is_set():  # closed before the loop began
            return
        tasks: dict[int, asyncio.Task[None]] = {}
        figures_at = 0.0
        try:
            while not self._stop.is_set():
                try:
                    subscriptions = await asyncio.to_thread(self.watch.subscriptions)
                    self._follow(subscriptions, tasks)
                    # Without hooks nothing is announced (`HookWatch`): nothing to do.
                    moved = 0
                    if subscriptions:
                        moved = await asyncio.to_thread(
                            outbox.hand_on, self.engine, subscriptions, self.clock(), HAND_ON_BATCH
                        )
                    if subscriptions and loop.time() - figures_at >= FIGURES_EVERY:
                        figures_at = loop.time()
                        await asyncio.to_thread(self._figures, subscriptions)
                except Exception:  # the database away: try again, never stop serving
                    log.exception("hooks: handing on the outbox failed")
                    moved = 0
                if moved < HAND_ON_BATCH:
                    await self._pause()
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    def _follow(
        self,
        subscriptions: tuple[Subscription, ...],
        tasks: dict[int, asyncio.Task[None]],
    ) -> None:
        """One task per hook: started for a new one (or again, for one whose task
        ended, say on a database away when it began), cancelled for one removed."""
        current = {hook.id: hook for hook in subscriptions}
        for hook_id in list(tasks):
            if hook_id not in current:
                tasks.pop(hook_id).cancel()
        for hook_id, hook in current.items():
            if hook_id not in tasks or tasks[hook_id].done():
                tasks[hook_id] = asyncio.create_task(self._serve(hook))

    async def _serve(self, hook: Subscription) -> None:
        secret = await asyncio.to_thread(hooks.secret_of, self.engine, hook.id)
        sender = sender_for(hook.target, secret or "", self.timeout, self.allow_private)
        try:
            while not self._stop.is_set():
                due: list[Delivery] = []
                try:
                    due = await self._batch(hook, sender)
                except Exception:
                    log.exception("hooks: serving hook %s failed", hook.id)
                if len(due) < CLAIM_BATCH:
                    await self._pause()
        finally:
            await sender.close()

    async def _batch(self, hook: Subscription, sender: Sender) -> list[Delivery]:
        """Claim the hook's due deliveries and send them; what was claimed."""
        now = self.clock()
        due = await asyncio.to_thread(
            hooks.claim, self.engine, hook.id, now, self.lease, CLAIM_BATCH
        )
        held_until = now + self.lease
        settled = 0
        try:
            # IN_FLIGHT at a time, their ends written in one transaction: a process
            # killed mid-batch sends again at most what was in flight.
            for start in range(0, len(due), IN_FLIGHT):
                flight = due[start : start + IN_FLIGHT]
                # Every one ends before any error goes on: none is let go still sending.
                ended = await asyncio.gather(
                    *(self._attempt(hook, sender, delivery) for delivery in flight),
                    return_exceptions=True,
                )
                for end in ended:
                    if isinstance(end, BaseException):
                        raise end
                acks = [ack for ack in ended if isinstance(ack, tuple)]
                await asyncio.to_thread(hooks.delivered_many, self.engine, acks, self.clock())
                settled = start + len(flight)
        except BaseException:
            # Stopped (shutdown, the hook removed) or the database away mid-batch: what
            # this batch still holds goes back at once, rather than when its lease ends.
            unsettled = [delivery.id for delivery in due[settled:]]
            try:
                await asyncio.to_thread(hooks.let_go, self.engine, unsettled, held_until)
            except Exception:
                log.warning(
                    "hooks: hook %s keeps %s leases until they end", hook.id, len(unsettled)
                )
            raise
        return due

    async def _attempt(
        self, hook: Subscription, sender: Sender, delivery: Delivery
    ) -> tuple[int, int] | None:
        """`_deliver`, where anything unforeseen (a CDR that cannot be shown, say) is a
        failed try like any other: retried later, then failed and kept, never lost and
        never holding up the rest of the batch."""
        try:
            return await self._deliver(hook, sender, delivery)
        except Exception as error:
            log.exception("hooks: delivering %s to hook %s failed", delivery.subject, hook.id)
            await asyncio.to_thread(
                self._failed, hook, delivery, f"internal: {type(error).__name__}"
            )
            return None

    async def _deliver(
        self, hook: Subscription, sender: Sender, delivery: Delivery
    ) -> tuple[int, int] | None:
        """Send one delivery; the (delivery id, version) that ended it, None if it
        failed (written already, with its next try)."""
        label = str(hook.id)
        message = await asyncio.to_thread(self._message, hook, delivery)
        if message is None:  # nothing newer to send, or nothing this hook takes
            metrics.HOOK_DELIVERIES.labels(label, "skipped").inc()
            return delivery.id, delivery.version
        version, sending = message
        try:
            await sender.send(sending, self.clock())
        except SendFailed as failure:
            await asyncio.to_thread(self._failed, hook, delivery, str(failure))
            return None
        metrics.HOOK_DELIVERIES.labels(label, "delivered").inc()
        return delivery.id, version

    def _message(self, hook: Subscription, delivery: Delivery) -> tuple[int, Message] | None:
        """What to send for this delivery now, and its version; None if nothing."""
        moment = self.clock()
        if delivery.cdr_id is None:
            version, kind, data = delivery.version, delivery.kind, delivery.payload
            body = body_of(kind, version, moment, None if data is None else json.loads(data))
        else:
            rendered = self.render(delivery.cdr_id)
            if rendered is None or rendered.version <= delivery.sent_version:
                return None
            version = rendered.version
            kind = cdr_kind(version, rendered.status)
            if not hook.wants(delivery.team, kind):
                return None
            body = body_of(kind, version, moment, rendered.data)
        message = Message(
            webhook_id(delivery.team, delivery.subject, version), kind, delivery.team, body
        )
        return version, message

    def _failed(self, hook: Subscription, delivery: Delivery, error: str) -> None:
        now = self.clock()
        since = delivery.pending_since or now
        attempts = delivery.attempts + 1
        if now - since >= self.retry_for:
            hooks.retry_later(self.engine, delivery.id, error, now, None)
            metrics.HOOK_DELIVERIES.labels(str(hook.id), "failed").inc()
            log.warning("hooks: gave up on %s for hook %s: %s", delivery.subject, hook.id, error)
            return
        wait = timedelta(seconds=retry_delay(attempts, random.random(), self.first_retry))
        hooks.retry_later(self.engine, delivery.id, error, now, now + wait)
        metrics.HOOK_DELIVERIES.labels(str(hook.id), "retry").inc()

    def _figures(self, subscriptions: tuple[Subscription, ...]) -> None:
        now = self.clock()
        metrics.OUTBOX_WAITING.set(outbox.waiting(self.engine))
        found = {row.hook_id: row for row in hooks.backlog(self.engine)}
        for hook in subscriptions:
            row = found.get(hook.id)
            label = str(hook.id)
            metrics.HOOK_BACKLOG.labels(label).set(row.pending if row else 0)
            metrics.HOOK_FAILED.labels(label).set(row.failed if row else 0)
            oldest = row.oldest_pending if row else None
            metrics.HOOK_OLDEST_SECONDS.labels(label).set(
                0 if oldest is None else max(0.0, (now - oldest).total_seconds())
            )
        hooks.prune(self.engine, now - PRUNE_AFTER)
