"""The dispatcher against real HTTP receivers, on each backend: a receiver that is down
for a while gets everything once it is back; one down past the retry time leaves the
deliveries failed until they are replayed; a receiver that hangs delays no other hook;
a CDR's versions arrive in order, the newest last, with valid signatures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from cdrlog.core.hooks import Kind
from cdrlog.service.clock import utc_now
from cdrlog.service.dispatcher import Dispatcher, Rendered
from cdrlog.service.hookadmin import subscribe
from cdrlog.service.hookwatch import HookWatch
from cdrlog.service.ingest import Ingestor
from cdrlog.store import hooks
from cdrlog.store.tables import cdr, hook_delivery
from support.legs import accepted, outbound
from support.receiver import Receiver, receiving

EVERY_CDR_KIND = (Kind.CDR_CREATED, Kind.CDR_UPDATED, Kind.CDR_CLOSED)


def render_from(engine: Engine) -> Callable[[int], Rendered | None]:
    """The CDR row's own columns (the web layer's full view is tested end to end)."""

    def render(cdr_id: int) -> Rendered | None:
        with engine.connect() as connection:
            row = connection.execute(select(cdr).where(cdr.c.id == cdr_id)).first()
        if row is None:
            return None
        data = {"id": row.id, "diallogid": row.diallogid, "status": row.status}
        return Rendered(row.version, row.status, data)

    return render


@contextmanager
def dispatching(
    engine: Engine,
    retry_for: timedelta = timedelta(hours=1),
    render: Callable[[int], Rendered | None] | None = None,
) -> Iterator[None]:
    dispatcher = Dispatcher(
        engine,
        HookWatch(engine, every=0.05),
        render or render_from(engine),
        utc_now,
        retry_for=retry_for,
        timeout=5,
        allow_private=True,
        poll=0.02,
        first_retry=0.05,
    )
    dispatcher.start()
    try:
        yield
    finally:
        dispatcher.close()


def hook_for(engine: Engine, receiver: Receiver, kinds: tuple[Kind, ...] = EVERY_CDR_KIND) -> int:
    made = subscribe(
        engine,
        utc_now,
        receiver.url,
        team=None,
        kinds=kinds,
        secret=None,
        note=None,
        allow_private=True,
    )
    receiver.secret = made.secret
    return made.subscription.id


def calls(engine: Engine, count: int, prefix: str) -> dict[str, int]:
    """Ingest `count` outbound calls event by event; each call's final version."""
    ingestor = Ingestor(engine, utc_now, hooks=HookWatch(engine, every=0))
    for n in range(count):
        for fields in outbound(f"{prefix}{n}"):
            ingestor.ingest(accepted(fields))
    with engine.connect() as connection:
        rows = connection.execute(select(cdr.c.diallogid, cdr.c.version)).all()
    return {sessionid: version for sessionid, version in rows if sessionid.startswith(prefix)}


def newest(receiver: Receiver) -> dict[str, int]:
    found: dict[str, int] = {}
    for message in receiver.messages():
        sessionid = message["data"]["diallogid"]
        found[sessionid] = max(found.get(sessionid, 0), message["version"])
    return found


def wait_for(done: Callable[[], Any], seconds: float = 60.0, engine: Engine | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not in time; deliveries: {rows(engine)}"
        time.sleep(0.02)


def rows(engine: Engine | None) -> list[tuple[Any, ...]]:
    """The delivery rows as they are, to say why something did not arrive."""
    if engine is None:
        return []
    with engine.connect() as connection:
        found = connection.execute(select(hook_delivery).order_by(hook_delivery.c.id)).all()
    return [tuple(row) for row in found]


def in_order(receiver: Receiver) -> bool:
    last: dict[str, int] = {}
    for message in receiver.messages():
        sessionid, version = message["data"]["diallogid"], message["version"]
        if version < last.get(sessionid, 0):
            return False
        last[sessionid] = version
    return True


def test_a_receiver_down_for_a_while_gets_everything_once_back(engine: Engine) -> None:
    with receiving() as receiver, dispatching(engine):
        hook_for(engine, receiver)
        receiver.down = True
        final = calls(engine, 5, "down")
        wait_for(lambda: receiver.refused >= 10)  # tried, and tried again
        assert receiver.messages() == []
        receiver.down = False
        wait_for(lambda: newest(receiver) == final, engine=engine)
    assert receiver.bad_signatures == 0
    assert in_order(receiver)


def test_past_the_retry_time_a_delivery_fails_and_is_kept_until_replayed(engine: Engine) -> None:
    with receiving() as receiver, dispatching(engine, retry_for=timedelta(seconds=0.3)):
        hook_id = hook_for(engine, receiver, (Kind.CDR_CLOSED,))
        receiver.down = True
        final = calls(engine, 3, "lost")
        wait_for(lambda: len(hooks.failed(engine, hook_id)) == len(final))
        failed = hooks.failed(engine, hook_id)
        assert all(row.last_error and "HTTP 503" in row.last_error for row in failed)
        receiver.down = False
        time.sleep(0.3)
        assert receiver.messages() == []  # failed stays failed
        assert hooks.replay(engine, utc_now(), hook_id=hook_id) == len(final)
        wait_for(lambda: newest(receiver) == final, engine=engine)
    assert hooks.failed(engine, hook_id) == []
    assert {m["type"] for m in receiver.messages()} == {"cdr.closed"}


def test_a_hanging_receiver_delays_no_other_hook(engine: Engine) -> None:
    with receiving() as hanging, receiving() as healthy, dispatching(engine):
        hook_for(engine, hanging)
        hook_for(engine, healthy)
        hanging.open.clear()
        final = calls(engine, 4, "both")
        wait_for(lambda: newest(healthy) == final, engine=engine)
        assert hanging.messages() == []
        hanging.open.set()
        wait_for(lambda: newest(hanging) == final, engine=engine)
    assert in_order(hanging)
    assert in_order(healthy)


def test_versions_superseded_while_waiting_are_skipped_the_newest_arrives(engine: Engine) -> None:
    with receiving() as receiver, dispatching(engine):
        hook_for(engine, receiver)
        receiver.open.clear()  # the first delivery hangs while the call goes on
        final = calls(engine, 1, "fast")
        time.sleep(0.3)
        receiver.open.set()
        wait_for(lambda: newest(receiver) == final, engine=engine)
    versions = [m["version"] for m in receiver.messages()]
    assert versions == sorted(versions)
    assert len(versions) < final["fast0"]  # some were never sent: superseded


def test_a_cdr_that_cannot_be_shown_is_tried_again_and_holds_up_no_other(
    engine: Engine,
) -> None:
    shown = render_from(engine)
    troubles = {"left": 3}

    def render(cdr_id: int) -> Rendered | None:
        rendered = shown(cdr_id)
        if rendered is not None and rendered.data["diallogid"] == "odd0" and troubles["left"]:
            troubles["left"] -= 1
            raise RuntimeError("cannot be shown")
        return rendered

    with receiving() as receiver, dispatching(engine, render=render):
        hook_id = hook_for(engine, receiver, (Kind.CDR_CLOSED,))
        final = calls(engine, 3, "odd")
        wait_for(lambda: newest(receiver) == final, engine=engine)
    assert troubles["left"] == 0
    assert hooks.failed(engine, hook_id) == []


def test_a_dispatcher_stopped_mid_delivery_lets_go_of_what_it_holds(engine: Engine) -> None:
    with receiving() as receiver:
        receiver.open.clear()
        hook_id = hook_for(engine, receiver, (Kind.CDR_CLOSED,))
        # Both announced before the dispatcher starts: one batch claims both, and both
        # hang in flight (none timed out and waiting for its next try).
        final = calls(engine, 2, "held")
        with dispatching(engine):
            wait_for(lambda: receiver.waiting >= len(final), engine=engine)
        # another dispatcher takes them at once, not when the lease would have ended
        taken = hooks.claim(engine, hook_id, utc_now(), timedelta(minutes=1), 64)
        assert len(taken) == len(final)
        receiver.open.set()


def test_closing_ends_a_pause_at_once(engine: Engine) -> None:
    with receiving() as receiver:
        dispatcher = Dispatcher(
            engine,
            HookWatch(engine, every=0.05),
            render_from(engine),
            utc_now,
            retry_for=timedelta(hours=1),
            timeout=5,
            allow_private=True,
            poll=3600,  # without a wake-up, closing would wait an hour
        )
        hook_for(engine, receiver)
        dispatcher.start()
        time.sleep(0.3)  # into its pauses, the hook's task's too
        assert dispatcher.running
        dispatcher.close(wait=30)
        assert not dispatcher.running
