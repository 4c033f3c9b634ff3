"""The alerter on each backend, with a clock the test moves: a service-level rule raised
when the level drops and cleared when it recovers, each delivered once to a real HTTP
receiver through a hook (signed, in order); a raise not yet sent when its clear comes
is superseded by it; a silent PBX raised after M minutes without an event and cleared by
the next one; two evaluators racing announce each change once; and the thread that a
serving process runs evaluates on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, delete

from cdrlog.core.alerts import Metric, NewRule, Rule
from cdrlog.service.alerter import Alerter
from cdrlog.service.hookwatch import HookWatch
from cdrlog.service.ingest import Ingestor
from cdrlog.store import alerts, hooks
from cdrlog.store.tables import alert_rule, alert_state, cdr, outbox
from support.alerting import (
    ALERT_KINDS,
    AT,
    alert_hook,
    announced,
    dispatching,
    inbound,
    received,
    store_calls,
)
from support.legs import accepted
from support.receiver import Receiver, receiving
from support.waiting import wait_until


class Moved:
    """A clock the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clean(engine: Engine) -> Iterator[Engine]:
    yield engine
    with engine.begin() as connection:
        for table in (outbox, alert_state, alert_rule):
            connection.execute(delete(table))


def alerter(engine: Engine, clock: Callable[[], datetime], every: float = 10.0) -> Alerter:
    return Alerter(
        engine,
        HookWatch(engine, every=0),
        clock,
        every=every,
        longest_call=timedelta(hours=4),
    )


def rule(engine: Engine, metric: Metric, threshold: float, team: str = "team1") -> Rule:
    return alerts.add(engine, NewRule(team, None, metric, threshold), AT - timedelta(days=1))


def alert_messages(receiver: Receiver) -> list[tuple[str, int, str]]:
    return [(m["type"], m["version"], m["data"]["state"]) for m in receiver.messages()]


def good_calls(prefix: str, around: datetime, count: int) -> list[dict[str, object]]:
    return [
        inbound(f"{prefix}{n}", around - timedelta(minutes=n + 1), waited=5) for n in range(count)
    ]


def test_a_service_level_drop_raises_once_and_the_recovery_clears_once(clean: Engine) -> None:
    clock = Moved(AT)
    evaluator = alerter(clean, clock)
    watched = rule(clean, Metric.SERVICE_LEVEL_BELOW, 0.8)
    with receiving() as receiver, dispatching(clean):
        receiver.secret = alert_hook(clean, receiver.url)
        store_calls(clean, good_calls("good", AT, 4))
        assert evaluator.evaluate() == []  # 100%
        late = [inbound(f"late{n}", AT - timedelta(minutes=2), waited=60) for n in range(2)]
        store_calls(
            clean, [*late, inbound("lost", AT - timedelta(minutes=3), waited=40, answered=False)]
        )
        raised = evaluator.evaluate()  # 4 of 7 answered in time
        assert [(c.kind, c.version, c.value) for c in raised] == [
            ("alert.raised", 1, round(4 / 7, 4))
        ]
        clock.at = AT + timedelta(minutes=1)
        assert evaluator.evaluate() == []  # raised once, not again
        wait_until(lambda: len(receiver.messages()) == 1)

        # Forty minutes on, the bad calls are out of the window and the new ones are good.
        clock.at = AT + timedelta(minutes=40)
        store_calls(clean, good_calls("later", clock.at, 3))
        cleared = evaluator.evaluate()
        assert [(c.kind, c.version, c.value) for c in cleared] == [("alert.cleared", 2, 1.0)]
        assert evaluator.evaluate() == []
        wait_until(lambda: len(receiver.messages()) == 2)
        time.sleep(0.5)  # nothing more comes
        assert alert_messages(receiver) == [
            ("alert.raised", 1, "raised"),
            ("alert.cleared", 2, "cleared"),
        ]
    assert receiver.bad_signatures == 0
    first, second = (m["data"] for m in receiver.messages())
    assert first == {
        "rule": watched.id,
        "team": "team1",
        "queue": None,
        "metric": "service_level_below",
        "threshold": 0.8,
        "window_minutes": 30,
        "value": round(4 / 7, 4),
        "state": "raised",
        "reason": None,
        "raised_at": AT.isoformat(),
        "cleared_at": None,
        "note": None,
    }
    assert (second["value"], second["reason"]) == (1.0, "recovered")
    assert (second["raised_at"], second["cleared_at"]) == (
        AT.isoformat(),
        (AT + timedelta(minutes=40)).isoformat(),
    )
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids == [f"msg_team1_alert:{watched.id}_1", f"msg_team1_alert:{watched.id}_2"]


def test_a_raise_not_yet_sent_when_its_clear_comes_is_superseded(clean: Engine) -> None:
    clock = Moved(AT)
    evaluator = alerter(clean, clock)
    rule(clean, Metric.WAITING_ABOVE, 0)
    with receiving() as receiver, dispatching(clean):
        receiver.secret = alert_hook(clean, receiver.url)
        receiver.down = True
        store_calls(clean, [inbound("w", AT - timedelta(seconds=30), waited=0, waiting=True)])
        assert [c.kind for c in evaluator.evaluate()] == ["alert.raised"]
        wait_until(lambda: receiver.refused >= 1)
        with clean.begin() as connection:  # the caller is gone
            connection.execute(delete(cdr))
        assert [c.kind for c in evaluator.evaluate()] == ["alert.cleared"]
        time.sleep(0.3)  # handed on while the raise still waits for its retry
        receiver.down = False
        wait_until(lambda: len(receiver.messages()) >= 1)
        time.sleep(0.5)
    # The receiver gets the alert as it stands, which says when it was raised.
    assert alert_messages(receiver) == [("alert.cleared", 2, "cleared")]
    assert receiver.messages()[0]["data"]["raised_at"] == AT.isoformat()


def test_a_silent_pbx_is_raised_after_m_minutes_and_cleared_by_its_next_event(
    clean: Engine,
) -> None:
    clock = Moved(AT)
    evaluator = alerter(clean, clock)
    watched = rule(clean, Metric.SILENT_MINUTES, 15)
    quiet = rule(clean, Metric.SILENT_MINUTES, 15, team="never-heard-of")
    hooks.add(clean, None, "https://crm.example/alerts", ALERT_KINDS, "whsec_x", AT)
    received(clean, "team1", AT - timedelta(minutes=1), "first")
    assert evaluator.evaluate() == []
    clock.at = AT + timedelta(minutes=13, seconds=59)
    assert evaluator.evaluate() == []  # 14 minutes and 59 seconds: not yet
    clock.at = AT + timedelta(minutes=14)
    assert [(c.rule_id, c.kind, c.value) for c in evaluator.evaluate()] == [
        (watched.id, "alert.raised", 15.0)
    ]
    clock.at = AT + timedelta(hours=2)
    assert evaluator.evaluate() == []  # still silent, raised once
    # The PBX speaks again: an agent logs in, through the real ingest path.
    login = {
        "event": "login",
        "agentno": "1001",
        "agentphone": "8001",
        "eventTime": "2026-12-04 12:00:00",
    }
    Ingestor(clean, clock).ingest(accepted(login))
    clock.at += timedelta(seconds=10)
    assert [(c.kind, c.value) for c in evaluator.evaluate()] == [("alert.cleared", 0.0)]
    assert [(s, v, kind) for _, s, v, kind, _ in announced(clean)] == [
        (f"alert:{watched.id}", 1, "alert.raised"),
        (f"alert:{watched.id}", 2, "alert.cleared"),
    ]
    assert alerts.watched(clean, ["never-heard-of"])[0].state.version == 0
    assert quiet.team == "never-heard-of"


def test_two_evaluators_racing_on_one_rule_announce_each_change_once(clean: Engine) -> None:
    clock = Moved(AT)
    evaluators = [alerter(clean, clock), alerter(clean, clock)]
    watched = rule(clean, Metric.WAITING_ABOVE, 0)
    hooks.add(clean, None, "https://crm.example/alerts", ALERT_KINDS, "whsec_x", AT)
    waiting = inbound("w", AT - timedelta(seconds=30), waited=0, waiting=True)
    for round_ in range(6):
        if round_ % 2 == 0:
            store_calls(clean, [waiting | {"diallogid": f"w{round_}"}])
        else:
            with clean.begin() as connection:
                connection.execute(delete(cdr))
        start = threading.Barrier(2)

        def evaluate(evaluator: Alerter, start: threading.Barrier = start) -> int:
            start.wait()
            return len(evaluator.evaluate())

        with ThreadPoolExecutor(2) as pool:
            made = list(pool.map(evaluate, evaluators))
        assert sum(made) == 1, (round_, made)
    kinds = [(v, kind) for _, s, v, kind, _ in announced(clean) if s == f"alert:{watched.id}"]
    expected = ["alert.raised", "alert.cleared"] * 3
    assert kinds == list(enumerate(expected, start=1))


def test_the_serving_thread_evaluates_on_its_own(clean: Engine) -> None:
    watched = rule(clean, Metric.WAITING_ABOVE, 0)
    store_calls(clean, [inbound("w", AT - timedelta(seconds=30), waited=0, waiting=True)])
    running = alerter(clean, Moved(AT), every=0.05)
    running.start()
    try:
        wait_until(lambda: alerts.watched(clean)[0].state.raised, what="the raise")
    finally:
        running.close()
    state = alerts.watched(clean)[0].state
    assert (state.version, state.value) == (1, 1.0)
    assert watched.metric is Metric.WAITING_ABOVE
