"""The outbox and the deliveries on each backend: a CDR's every change gets a new version
and, while a hook exists, an outbox row in its own transaction; handing on keeps the
newest version per (hook, CDR) whatever order it comes in; a delivery's life (claimed,
delivered, retried, failed, replayed) and the backlog's figures."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select

from cdrlog.core.hooks import Kind, Subscription
from cdrlog.service.hookwatch import HookWatch
from cdrlog.service.ingest import Ingestor
from cdrlog.store import hooks, outbox
from cdrlog.store.tables import cdr, hook_delivery
from cdrlog.store.tables import outbox as outbox_table
from support.legs import T0, TEAM, accepted, outbound

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
ALL_CDR_KINDS = (Kind.CDR_CREATED, Kind.CDR_UPDATED, Kind.CDR_CLOSED)


@pytest.fixture
def clean(engine: Engine) -> Iterator[Engine]:
    yield engine
    with engine.begin() as connection:
        for table in (hook_delivery, outbox_table):
            connection.execute(delete(table))


def watched(engine: Engine) -> Ingestor:
    # The calls' own time: later, they would be past the longest call, and closed.
    return Ingestor(engine, lambda: T0 + timedelta(minutes=5), hooks=HookWatch(engine, every=0))


def announced(engine: Engine) -> list[tuple[str, int, str]]:
    query = select(outbox_table.c.subject, outbox_table.c.version, outbox_table.c.kind)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query.order_by(outbox_table.c.id))]


def version_of(engine: Engine, sessionid: str) -> int:
    with engine.connect() as connection:
        query = select(cdr.c.version).where(cdr.c.diallogid == sessionid)
        return int(connection.execute(query).scalar_one())


def test_every_change_is_a_new_version_announced_only_while_a_hook_exists(clean: Engine) -> None:
    ingestor = watched(clean)
    # the agent's leg alone makes no CDR; the customer's ringing makes version 1
    first, rest = outbound("o1")[:2], outbound("o1")[2:]
    ingestor.ingest_many([accepted(fields) for fields in first])
    assert version_of(clean, "o1") == 1
    assert announced(clean) == []  # no hook: nothing to announce

    hooks.add(clean, None, "https://crm.example/h", ALL_CDR_KINDS, "whsec_x", NOW)
    for fields in rest:
        ingestor.ingest(accepted(fields))
    ingestor.ingest(accepted(rest[-1]))  # a duplicate changes nothing
    found = announced(clean)
    versions = [version for _, version, _ in found]
    assert versions == list(range(2, version_of(clean, "o1") + 1))
    assert [kind for _, _, kind in found] == ["cdr.updated"] * (len(found) - 1) + ["cdr.closed"]


def test_a_hook_of_another_team_announces_nothing(clean: Engine) -> None:
    hooks.add(clean, "someone-else", "https://crm.example/h", ALL_CDR_KINDS, "whsec_x", NOW)
    watched(clean).ingest(accepted(outbound("o2")[0]))
    assert announced(clean) == []


def test_a_refold_announces_its_changes_too(clean: Engine) -> None:
    hooks.add(clean, TEAM, "https://crm.example/h", ALL_CDR_KINDS, "whsec_x", NOW)
    moment = [T0 + timedelta(seconds=10)]
    ingestor = Ingestor(clean, lambda: moment[0], hooks=HookWatch(clean, every=0))
    for fields in outbound("o3")[:2]:
        ingestor.ingest(accepted(fields))
    assert announced(clean) == [("o3", 1, "cdr.created")]
    moment[0] = T0 + timedelta(days=1)
    assert ingestor.close_stale() == 1  # the timeout sweep closes it
    assert announced(clean)[-1] == ("o3", 2, "cdr.closed")


def subscription(hook_id: int, kinds: tuple[Kind, ...] = ALL_CDR_KINDS) -> Subscription:
    return Subscription(hook_id, None, "https://crm.example/h", kinds, NOW)


def announce_versions(engine: Engine, versions: list[int]) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(outbox_table),
            [
                {
                    "orgidentity": TEAM,
                    "subject": "s1",
                    "cdr_id": 7,
                    "version": version,
                    "kind": "cdr.updated",
                    "created_at": NOW,
                }
                for version in versions
            ],
        )


def deliveries(engine: Engine) -> list[tuple[int, int, int, str]]:
    columns = (
        hook_delivery.c.hook_id,
        hook_delivery.c.version,
        hook_delivery.c.sent_version,
        hook_delivery.c.state,
    )
    with engine.connect() as connection:
        query = select(*columns).order_by(hook_delivery.c.hook_id)
        return [tuple(row) for row in connection.execute(query)]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=5), min_size=1, max_size=4))
def test_handing_on_keeps_the_newest_version_whatever_the_order(
    clean: Engine, batches: list[list[int]]
) -> None:
    with clean.begin() as connection:
        connection.execute(delete(hook_delivery))
        connection.execute(delete(outbox_table))
    for batch in batches:
        announce_versions(clean, batch)
        outbox.hand_on(clean, [subscription(1), subscription(2, (Kind.CDR_CLOSED,))], NOW, limit=2)
    while outbox.hand_on(clean, [subscription(1)], NOW):
        pass
    newest = max(v for batch in batches for v in batch)
    # hook 2 takes no cdr.updated: it has no delivery at all
    assert deliveries(clean) == [(1, newest, 0, "pending")]
    assert outbox.waiting(clean) == 0


def test_a_delivery_lives_claimed_delivered_retried_failed_replayed(clean: Engine) -> None:
    announce_versions(clean, [1, 2])
    outbox.hand_on(clean, [subscription(1)], NOW)
    lease = timedelta(seconds=30)
    (taken,) = hooks.claim(clean, 1, NOW, lease, 10)
    assert (taken.version, taken.sent_version, taken.attempts) == (2, 0, 0)
    # held: nobody else takes it until the lease ends
    assert hooks.claim(clean, 1, NOW + timedelta(seconds=29), lease, 10) == []

    hooks.retry_later(clean, taken.id, "HTTP 503", NOW, NOW + timedelta(seconds=5))
    assert hooks.claim(clean, 1, NOW + timedelta(seconds=4), lease, 10) == []
    (again,) = hooks.claim(clean, 1, NOW + timedelta(seconds=5), lease, 10)
    assert (again.attempts, again.last_error) == (1, "HTTP 503")
    (figures,) = hooks.backlog(clean)
    assert (figures.pending, figures.failed, figures.oldest_pending) == (1, 0, NOW)

    hooks.retry_later(clean, again.id, "timeout", NOW, None)  # given up on
    assert hooks.claim(clean, 1, NOW + timedelta(days=2), lease, 10) == []
    (lost,) = hooks.failed(clean)
    assert (lost.state, lost.attempts, lost.last_error) == ("failed", 2, "timeout")

    assert hooks.replay(clean, NOW, hook_id=1) == 1
    (replayed,) = hooks.claim(clean, 1, NOW, lease, 10)
    hooks.delivered(clean, replayed.id, 2, NOW)
    assert deliveries(clean) == [(1, 2, 2, "done")]
    assert hooks.failed(clean) == []

    # a version announced after: due again; an older one: nothing to do
    announce_versions(clean, [3, 1])
    outbox.hand_on(clean, [subscription(1)], NOW)
    assert deliveries(clean) == [(1, 3, 2, "pending")]
    hooks.delivered(clean, replayed.id, 3, NOW)
    assert hooks.prune(clean, NOW + timedelta(seconds=1)) == 1
    assert deliveries(clean) == []


def test_a_version_announced_while_one_is_sent_is_due_after_it(clean: Engine) -> None:
    announce_versions(clean, [1])
    outbox.hand_on(clean, [subscription(1)], NOW)
    (taken,) = hooks.claim(clean, 1, NOW, timedelta(seconds=30), 10)
    announce_versions(clean, [2])
    outbox.hand_on(clean, [subscription(1)], NOW)
    hooks.delivered(clean, taken.id, 1, NOW)  # the send of version 1 ends
    assert deliveries(clean) == [(1, 2, 1, "pending")]
    (next_one,) = hooks.claim(clean, 1, NOW, timedelta(seconds=30), 10)
    assert next_one.version == 2


def test_a_lease_let_go_is_due_at_once_unless_another_took_it_since(clean: Engine) -> None:
    announce_versions(clean, [1])
    outbox.hand_on(clean, [subscription(1)], NOW)
    lease = timedelta(seconds=30)
    (taken,) = hooks.claim(clean, 1, NOW, lease, 10)
    hooks.let_go(clean, [taken.id], NOW + lease)
    (again,) = hooks.claim(clean, 1, NOW + timedelta(seconds=1), lease, 10)
    # the first holder lets go late: the lease taken since is not its to end
    hooks.let_go(clean, [again.id], NOW + lease)
    assert hooks.claim(clean, 1, NOW + timedelta(seconds=2), lease, 10) == []
    assert hooks.claim(clean, 1, NOW + timedelta(seconds=31), lease, 10) != []


# SQLite takes one writer at a time: it has no concurrent dispatchers to test.
@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_dispatchers_share_the_outbox_and_the_deliveries(clean: Engine) -> None:
    """Many handing on and claiming at once: every version reaches its delivery row,
    and no delivery is held by two at a time."""
    rng = random.Random(5)
    rows: list[dict[str, Any]] = [
        {
            "orgidentity": TEAM,
            "subject": f"s{rng.randrange(40)}",
            "cdr_id": 1,
            "version": v,
            "kind": "cdr.updated",
            "created_at": NOW,
        }
        for v in range(1, 801)
    ]
    with clean.begin() as connection:
        connection.execute(insert(outbox_table), rows)
    hooks_wanted = [subscription(1), subscription(2)]

    def hand_on_all(_: int) -> int:
        moved = 0
        while step := outbox.hand_on(clean, hooks_wanted, NOW, limit=50):
            moved += step
        return moved

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(hand_on_all, range(4))) == len(rows)
    newest: dict[str, int] = {}
    for row in rows:
        newest[row["subject"]] = max(newest.get(row["subject"], 0), row["version"])
    with clean.connect() as connection:
        held = connection.execute(
            select(hook_delivery.c.hook_id, hook_delivery.c.subject, hook_delivery.c.version)
        ).all()
    assert {(h, s): v for h, s, v in held} == {(h, s): v for h in (1, 2) for s, v in newest.items()}

    def claim_all(_: int) -> list[int]:
        return [d.id for d in hooks.claim(clean, 1, NOW, timedelta(minutes=1), 7)]

    with ThreadPoolExecutor(4) as pool:
        claimed = [i for ids in pool.map(claim_all, range(8)) for i in ids]
    assert len(claimed) == len(set(claimed)) == len(newest)
    with clean.connect() as connection:
        count = connection.execute(select(func.count()).select_from(outbox_table)).scalar_one()
    assert count == 0
