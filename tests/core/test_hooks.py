"""What hooks are sent: kinds from a CDR's state, delivery ids, routing keys, backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrlog.core.hooks import (
    DEFAULT_KINDS,
    FIRST_RETRY_SECONDS,
    LONGEST_RETRY_SECONDS,
    Kind,
    Subscription,
    cdr_kind,
    change_kind,
    parse_kinds,
    retry_delay,
    routing_key,
    webhook_id,
)
from cdrlog.core.record import Cdr
from cdrlog.core.rules import Disposition, Status

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def record(status: Status) -> Cdr:
    return Cdr(
        team="team1",
        diallogid="s1",
        calltype="dialin",
        target="DialIn",
        src="138",
        dst="8001",
        agentno="1001",
        starttime=START,
        answertime=None,
        endtime=None if status is Status.OPEN else START,
        duration=None if status is Status.OPEN else 0,
        billsec=None if status is Status.OPEN else 0,
        disposition=Disposition.NOANSWER,
        status=status,
        did=None,
        agent_group=None,
        hold_seconds=None if status is Status.OPEN else 0,
        transferred_to=None,
    )


@pytest.mark.parametrize(
    ("version", "status", "kind"),
    [
        (1, "open", Kind.CDR_CREATED),
        (2, "open", Kind.CDR_UPDATED),
        (1, "closed", Kind.CDR_CLOSED),
        (5, "closed", Kind.CDR_CLOSED),
        (3, "timeout", Kind.CDR_CLOSED),
    ],
)
def test_a_cdrs_kind_follows_from_its_state(version: int, status: str, kind: Kind) -> None:
    assert cdr_kind(version, status) is kind


def test_a_change_is_named_as_the_state_it_leaves() -> None:
    opened, ended = record(Status.OPEN), record(Status.CLOSED)
    assert change_kind(None, opened) is Kind.CDR_CREATED
    assert change_kind(opened, opened) is Kind.CDR_UPDATED
    assert change_kind(None, ended) is Kind.CDR_CLOSED  # created and ended in one go
    assert change_kind(ended, ended) is Kind.CDR_CLOSED  # a correction after the end


def test_kinds_are_parsed_in_order_and_unknown_ones_named() -> None:
    assert parse_kinds([]) == DEFAULT_KINDS == (Kind.CDR_CLOSED,)
    assert parse_kinds(["cdr.closed", "cdr.created", "cdr.closed"]) == (
        Kind.CDR_CREATED,
        Kind.CDR_CLOSED,
    )
    with pytest.raises(ValueError, match=r"unknown kind 'cdr\.deleted'"):
        parse_kinds(["cdr.deleted"])


def test_a_subscription_takes_its_team_and_kinds() -> None:
    mine = Subscription(1, "team1", "https://crm.example/hook", (Kind.CDR_CLOSED,), START)
    every = Subscription(2, None, "https://crm.example/hook", (Kind.CDR_CLOSED,), START)
    assert mine.wants("team1", "cdr.closed")
    assert not mine.wants("team2", "cdr.closed")
    assert not mine.wants("team1", "cdr.created")
    assert every.wants("team2", "cdr.closed")


def test_a_delivery_is_named_by_team_subject_and_version() -> None:
    assert webhook_id("team1", "s1", 3) == webhook_id("team1", "s1", 3)
    assert len({webhook_id("team1", "s1", 3), webhook_id("team2", "s1", 3)}) == 2
    assert webhook_id("team1", "s1", 3) != webhook_id("team1", "s1", 4)
    assert routing_key("cdr.closed", "team1") == "cdr.closed.team1"


@given(st.integers(1, 200), st.floats(0, 1, exclude_max=True))
def test_backoff_doubles_with_jitter_up_to_an_hour(attempts: int, draw: float) -> None:
    step = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 30))
    delay = retry_delay(attempts, draw)
    assert step / 2 <= delay <= step
    assert retry_delay(attempts, 0.0) <= retry_delay(attempts + 1, 0.0)


def test_backoff_starts_at_seconds() -> None:
    assert retry_delay(1, 0.0) == FIRST_RETRY_SECONDS / 2
    assert retry_delay(1, 0.999) < FIRST_RETRY_SECONDS
    assert retry_delay(100, 0.999) <= LONGEST_RETRY_SECONDS
