"""What subscriptions (hooks) are sent: the kinds of change, which subscription wants
which, how each delivery is named, and when a failed one is tried again.

A CDR's kind follows from its state alone: `cdr.closed` for any version whose call has
ended (the first close, and a correction after it: whoever wants final CDRs wants the
corrected one too), else `cdr.created` for its first version and `cdr.updated` for a
later one. So a delivery that sends a newer state than the change it was queued for
names that state's kind, never the older change's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cdrlog.core.record import Cdr
from cdrlog.core.rules import Status


class Kind(StrEnum):
    CDR_CREATED = "cdr.created"
    CDR_UPDATED = "cdr.updated"
    CDR_CLOSED = "cdr.closed"
    ALERT_RAISED = "alert.raised"
    ALERT_CLEARED = "alert.cleared"


DEFAULT_KINDS = (Kind.CDR_CLOSED,)
CDR_KINDS = frozenset({Kind.CDR_CREATED, Kind.CDR_UPDATED, Kind.CDR_CLOSED})


def cdr_kind(version: int, status: str) -> Kind:
    """The kind of a CDR's state: its version and `status` column."""
    if status != Status.OPEN.value:
        return Kind.CDR_CLOSED
    return Kind.CDR_CREATED if version == 1 else Kind.CDR_UPDATED


def change_kind(before: Cdr | None, after: Cdr) -> Kind:
    """The kind of the state a change leaves (`cdr_kind` of it, known before its
    version is read: a CDR with no state before is at version 1)."""
    return cdr_kind(1 if before is None else 2, after.status.value)


def parse_kinds(names: Iterable[str]) -> tuple[Kind, ...]:
    """Kinds by name, in `Kind` order without repeats; ValueError naming an unknown one."""
    wanted: set[Kind] = set()
    for name in names:
        try:
            wanted.add(Kind(name.strip()))
        except ValueError:
            known = ", ".join(kind.value for kind in Kind)
            raise ValueError(f"unknown kind {name!r}: one of {known}") from None
    return tuple(kind for kind in Kind if kind in wanted) or DEFAULT_KINDS


@dataclass(frozen=True, slots=True)
class Subscription:
    """A hook: where to, for which team (None: all), which kinds. Its secret is kept
    apart (`HookSecret`) so that nothing that shows a subscription can show it."""

    id: int
    team: str | None
    target: str
    kinds: tuple[Kind, ...]
    created_at: datetime
    note: str | None = None

    def wants(self, team: str, kind: str) -> bool:
        return (self.team is None or self.team == team) and kind in self.kinds


def webhook_id(team: str, subject: str, version: int) -> str:
    """The same for every delivery of one (CDR, version), so a receiver drops repeats;
    the team keeps two teams' equal sessionids apart."""
    return f"msg_{team}_{subject}_{version}"


def routing_key(kind: str, team: str) -> str:
    """RabbitMQ's routing key: `<kind>.<team>` (a binding `cdr.closed.*` takes every
    team's closed CDRs)."""
    return f"{kind}.{team}"


# Backoff: 5 s after the first failure, doubling, never more than an hour between tries.
FIRST_RETRY_SECONDS = 5.0
LONGEST_RETRY_SECONDS = 3600.0


def retry_delay(attempts: int, draw: float, first: float = FIRST_RETRY_SECONDS) -> float:
    """Seconds before try `attempts + 1`, after `attempts` failures (>= 1): exponential,
    with "full jitter" (`draw` in [0, 1) picks a point in the upper half of the step) so
    that a receiver back after an outage is not met by every delivery at once."""
    step = min(LONGEST_RETRY_SECONDS, first * float(2 ** min(attempts - 1, 30)))
    return step / 2 + step / 2 * draw
