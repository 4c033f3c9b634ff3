"""Real contention: three server processes with four writers each on one database, and
every call's events dealt out across them on purpose.

Event i of a call (in a shuffled order) goes to server i mod 3, from 24 sender threads
that work through the calls a few at a time, so the same call's events are committed by
different processes at the same moment and its lock row is fought over. Every POST must
get its 200 on the first try: nothing is retried here, so a 503 or a lost answer is a
failure, never a silent success. The test records which server acknowledged each event
and asserts the split from those answers; every CDR must equal the one its call's
script demands, once. The transactions the servers ran again (deadlocks, lock timeouts)
are read from their /metrics and printed: contention may cause them, the test does
not demand them.

The first server keeps no call in memory (`--call-cache 0`: every call read back); the
others keep theirs, and since every call's events are dealt across servers, what they
hold is stale whenever another server stored an event of the call since: they must
notice (their read-backs counted in /metrics) and still fold every call exactly.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import OperationalError

from cdrlog.service import metrics
from cdrlog.sim.simulate import FORM_TYPE, event_url, form_body
from cdrlog.sim.traffic import Delivery, GeneratedCall, delivery_order, generate_calls
from cdrlog.store.database import (
    RETRY_KINDS,
    TRANSACTION_RETRIES,
    in_transaction,
    make_engine,
)
from cdrlog.store.tables import call_event
from conftest import Backend
from support.chaos import distinct_events, wrong_agents, wrong_cdrs
from support.servers import running_servers

SERVERS = 3
WRITERS = 4
CALLS = 200
SENDERS = 24
# Calls whose events are shuffled together: about this many calls are in flight at once.
CALLS_IN_FLIGHT = 8
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
RETRIES = "cdrlog_transaction_retries_total"
FORM = {"content-type": FORM_TYPE}


@dataclass(frozen=True, slots=True)
class Post:
    """One event to send: its call (by number), whether it is the call's own event (an
    agent's rides along), and the server it goes to."""

    call: int
    own: bool
    server: int
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Answered:
    """What one POST got: the status (0: no answer) and when it was in flight."""

    post: Post
    status: int
    began: float
    ended: float
    error: str = ""


def _dealt(calls: Sequence[GeneratedCall], rng: random.Random) -> list[Post]:
    """Every delivery of every call (10% sent twice), event i of a call's shuffled own
    events to server i mod SERVERS, its agents' events likewise; calls taken
    CALLS_IN_FLIGHT at a time, their posts shuffled together."""
    number = {id(call): n for n, call in enumerate(calls)}
    per_call: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in delivery_order(calls, rng, duplicate_ratio=0.1):
        per_call[number[id(delivery.call)]].append(delivery)
    posts: list[Post] = []
    for first in range(0, len(calls), CALLS_IN_FLIGHT):
        group: list[Post] = []
        for n in range(first, min(first + CALLS_IN_FLIGHT, len(calls))):
            own = [d for d in per_call[n] if d.event.get("sessionid")]
            riding = [d for d in per_call[n] if not d.event.get("sessionid")]
            rng.shuffle(own)
            group += [Post(n, True, i % SERVERS, d) for i, d in enumerate(own)]
            group += [Post(n, False, (n + i) % SERVERS, d) for i, d in enumerate(riding)]
        rng.shuffle(group)
        posts += group
    return posts


def _send(posts: Sequence[Post], bases: Sequence[str]) -> list[Answered]:
    """POST each once, SENDERS threads taking the next post in order; no retries."""
    answers: list[Answered] = []
    taken = iter(posts)
    lock = threading.Lock()

    def sender() -> None:
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
            while True:
                with lock:
                    post = next(taken, None)
                if post is None:
                    return
                answer = _post(client, bases[post.server], post)
                with lock:
                    answers.append(answer)

    threads = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _post(client: httpx.Client, base: str, post: Post) -> Answered:
    delivery = post.delivery
    url = event_url(base, delivery.event, delivery.team)
    began = time.monotonic()
    try:
        response = client.post(url, content=form_body(delivery.event), headers=FORM)
    except httpx.TransportError as error:
        return Answered(post, 0, began, time.monotonic(), type(error).__name__)
    text = "" if response.status_code == 200 else response.text[:200]
    return Answered(post, response.status_code, began, time.monotonic(), text)


def _overlapping(answers: Sequence[Answered]) -> bool:
    """Whether two of these (one call's own events) were in flight at different servers
    at the same time."""
    return any(
        a.post.server != b.post.server and a.began < b.ended and b.began < a.ended
        for n, a in enumerate(answers)
        for b in answers[n + 1 :]
    )


def _call_states(text: str) -> dict[str, float]:
    """A server's `cdrlog_call_states_total` by source."""
    return {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "cdrlog_call_states_total"
    }


def _retries(text: str) -> dict[str, float]:
    """Retried transactions by kind, from a /metrics text."""
    return {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == RETRIES
    }


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_three_processes_with_four_writers_split_every_call_and_agree(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    # SQLite is left out: it takes one writing transaction at a time for the whole
    # database, so there are no row locks to contend for (test_concurrency covers it).
    rng = random.Random(20261127)
    calls = generate_calls(rng, START, calls=CALLS, teams=3, agents=8, time_format="mixed")
    posts = _dealt(calls, rng)

    extra = ["--writers", str(WRITERS)]
    cold = [["--call-cache", "0"]]
    with running_servers(backend.url, tmp_path, SERVERS, extra, cold) as bases:
        began = time.monotonic()
        answers = _send(posts, bases)
        elapsed = time.monotonic() - began
        scraped = [httpx.get(f"{base}/metrics", timeout=10).text for base in bases]
        retries = [_retries(text) for text in scraped]
        states = [_call_states(text) for text in scraped]

    failed = [a for a in answers if a.status != 200]
    own: dict[int, list[Answered]] = defaultdict(list)
    for answer in answers:
        if answer.post.own:
            own[answer.post.call].append(answer)
    split = [n for n, mine in own.items() if len({a.post.server for a in mine}) >= 2]
    several = [n for n, mine in own.items() if len(mine) >= 2]
    overlapped = [n for n in several if _overlapping(own[n])]
    total_retries = sum(sum(kinds.values()) for kinds in retries)
    print(
        f"\n[{backend.name}] {len(answers)} events of {len(calls)} calls to {SERVERS} "
        f"servers x {WRITERS} writers in {elapsed:.1f} s ({len(answers) / elapsed:.0f}/s); "
        f"failed {len(failed)}; calls split {len(split)}/{len(several)}, "
        f"in flight at two servers at once {len(overlapped)}/{len(several)}; "
        f"transaction retries {total_retries:g} (per server, by kind: {retries}); "
        f"call states per server, by source: {states}"
    )

    assert len(answers) == len(posts)
    shown = [(a.status, a.error, a.post.delivery.event) for a in failed[:5]]
    assert not failed, f"{len(failed)} POSTs were not a 200 on the first try, e.g. {shown}"
    # The split, from the answers: every call of two events or more was acknowledged by
    # at least two servers, and most had events in flight at two servers at once
    # (measured: all but one or two of 300).
    assert sorted(split) == sorted(several)
    assert len(overlapped) >= len(several) // 2
    for kinds in retries:
        assert set(kinds) == set(RETRY_KINDS), f"{RETRIES} is not exposed by kind: {kinds}"
        assert all(count >= 0 for count in kinds.values())
    assert states[0]["memory"] == 0
    assert states[0]["read_back"] > 0
    for warm in states[1:]:
        assert warm["read_back"] > 0  # calls another server had changed since

    with engine.connect() as connection:
        journaled = connection.execute(select(func.count()).select_from(call_event)).scalar_one()
    assert journaled == distinct_events(calls)
    assert wrong_cdrs(engine, calls) == []
    assert wrong_agents(engine, calls, datetime.now(UTC)) == []


def test_a_transaction_run_again_is_counted_and_shown_in_metrics(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cdrlog.db'}")
    tries: list[int] = []

    def busy_once(connection: Connection) -> int:
        tries.append(1)
        if len(tries) == 1:
            locked = sqlite3.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", {}, locked)
        return len(tries)

    before, shown_before = TRANSACTION_RETRIES.counts(), _retries(metrics.exposition()[0].decode())
    try:
        assert in_transaction(engine, busy_once) == 2
    finally:
        engine.dispose()
    after, shown_after = TRANSACTION_RETRIES.counts(), _retries(metrics.exposition()[0].decode())
    assert after["locked"] - before["locked"] == 1
    assert shown_after["locked"] - shown_before["locked"] == 1
    assert set(shown_after) == set(RETRY_KINDS)
