"""What the alert tests write and read: inbound CDRs relative to a moment (answered
after a wait, abandoned, or still waiting), journal rows received at a moment, the
outbox's announcements of alerts, and a dispatcher sending to a hook of alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from cdrlog.core.hooks import Kind
from cdrlog.service.clock import utc_now
from cdrlog.service.dispatcher import Dispatcher, Rendered
from cdrlog.service.hookadmin import subscribe
from cdrlog.service.hookwatch import HookWatch
from cdrlog.store.tables import call_event, cdr, outbox

ALERT_KINDS = (Kind.ALERT_RAISED, Kind.ALERT_CLEARED)

AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def inbound(
    diallogid: str,
    start: datetime,
    *,
    waited: float,
    answered: bool = True,
    waiting: bool = False,
    team: str = "team1",
    queue: str | None = "100",
) -> dict[str, Any]:
    """A `cdr` row of an inbound call that started at `start`: answered after `waited`
    seconds, else abandoned then, or (`waiting`) still open and unanswered."""
    settled = start + timedelta(seconds=waited)
    end = None if waiting else settled + timedelta(seconds=60 if answered else 0)
    return {
        "orgidentity": team,
        "diallogid": diallogid,
        "calltype": "dialin",
        "target": "DialIn",
        "src": "13800138000",
        "dst": "8001",
        "agentno": "1001" if answered else None,
        "starttime": start,
        "answertime": settled if answered and not waiting else None,
        "endtime": end,
        "duration": None if end is None else round((end - start).total_seconds()),
        "billsec": None if end is None else 60 if answered else 0,
        "disposition": "ANSWER" if answered and not waiting else "NOANSWER",
        "status": "open" if waiting else "closed",
        "agent_group": queue,
        "created_at": start,
        "updated_at": start,
    }


def store_calls(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(cdr), rows)


def received(engine: Engine, team: str, at: datetime, fingerprint: str) -> None:
    """A journal row of `team`, received at `at` (what a silent-PBX rule reads)."""
    with engine.begin() as connection:
        connection.execute(
            insert(call_event),
            {
                "orgidentity": team,
                "fingerprint": fingerprint,
                "event": "login",
                "event_time": at,
                "agentno": "1001",
                "fields": "{}",
                "received_at": at,
            },
        )


def announced(engine: Engine) -> list[tuple[str, str, int, str, dict[str, Any]]]:
    """The outbox's alert rows in order: (team, subject, version, kind, payload)."""
    query = (
        select(outbox)
        .where(outbox.c.cdr_id.is_(None), outbox.c.subject.startswith("alert:"))
        .order_by(outbox.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        (row.orgidentity, row.subject, row.version, row.kind, json.loads(row.payload))
        for row in rows
    ]


def alert_hook(engine: Engine, target: str) -> str:
    """A hook of every team's alerts to `target`; its secret."""
    made = subscribe(
        engine,
        utc_now,
        target,
        team=None,
        kinds=ALERT_KINDS,
        secret=None,
        note=None,
        allow_private=True,
    )
    return made.secret


def _no_cdr(cdr_id: int) -> Rendered | None:
    raise AssertionError(f"an alert's delivery rendered CDR {cdr_id}")


@contextmanager
def dispatching(engine: Engine) -> Iterator[None]:
    """The dispatcher as a serving process runs it, quick to poll and to retry."""
    dispatcher = Dispatcher(
        engine,
        HookWatch(engine, every=0.05),
        _no_cdr,
        utc_now,
        retry_for=timedelta(hours=1),
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
