"""Prometheus metrics. Under several worker processes they are kept in the directory
named by PROMETHEUS_MULTIPROC_DIR and summed by whichever process is scraped."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from cdrlog.core.record import Cdr
from cdrlog.core.rules import Status
from cdrlog.store.database import RETRY_KINDS, TRANSACTION_RETRIES, RetryKind

EVENTS_RECEIVED = Counter(
    "cdrlog_events_received", "Events decoded from push bodies, by event type", ["event"]
)
EVENTS_ACCEPTED = Counter(
    "cdrlog_events_accepted",
    "Events acknowledged, by event type and outcome (stored, duplicate, spooled)",
    ["event", "outcome"],
)
EVENTS_REJECTED = Counter("cdrlog_events_rejected", "Events or bodies refused with a 4xx")
CDRS_CREATED = Counter("cdrlog_cdrs_created", "CDRs created, by disposition", ["disposition"])
CDRS_CLOSED = Counter(
    "cdrlog_cdrs_closed", "CDRs closed (hangup or timeout), by disposition", ["disposition"]
)
INGEST_SECONDS = Histogram(
    "cdrlog_ingest_seconds",
    "From a request's events being checked to their commit",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "cdrlog_batch_events",
    "Events per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
CALL_STATES = Counter(
    "cdrlog_call_states",
    "Calls a write transaction locked, by where their state came from: memory (the "
    "writer's own last commit), new (a call seen first), read_back (another process, a "
    "rebuild or a restart changed it since, or it was forgotten)",
    ["source"],
)
CALL_STATE_SOURCES = ("memory", "new", "read_back")
for _source in CALL_STATE_SOURCES:
    CALL_STATES.labels(_source)
DATABASE_ERRORS = Counter("cdrlog_database_errors", "Failed database transactions")
RETRIES = Counter(
    "cdrlog_transaction_retries",
    "Write transactions run again after a transient error, by kind (deadlock, lock_timeout, "
    "serialization, locked, other: a lost connection)",
    ["kind"],
)
for _kind in RETRY_KINDS:
    RETRIES.labels(_kind)  # every kind shown from the start, at 0
SPOOL_DEPTH = Gauge(
    "cdrlog_spool_depth", "Events waiting in the spool for the database", multiprocess_mode="max"
)


KNOWN_EVENTS = frozenset({"ringing", "answer", "hangup", "link", "hold", "login", "logout"})


def event_label(event: str | None) -> str:
    """Event types as labels, bounded: senders choose the text, and labels cost memory."""
    name = (event or "").lower()
    return name if name in KNOWN_EVENTS else "other"


def record_cdr_changes(changes: list[tuple[Cdr | None, Cdr]]) -> None:
    for before, after in changes:
        if before is None:
            CDRS_CREATED.labels(after.disposition.value).inc()
        was_open = before is None or before.status is Status.OPEN
        if was_open and after.status is not Status.OPEN:
            CDRS_CLOSED.labels(after.disposition.value).inc()


def _count_retry(kind: RetryKind) -> None:
    RETRIES.labels(kind).inc()


# The store counts its retries and tells whoever listens; a Counter written per process
# is what PROMETHEUS_MULTIPROC_DIR sums over `serve --workers N`.
TRANSACTION_RETRIES.listen(_count_retry)


def exposition() -> tuple[bytes, str]:
    """The metrics text, summed over worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


TOKENLESS_PUSHES = Counter(
    "cdrlog_tokenless_pushes",
    "Events pushed without a token and accepted (push-auth mode open or observe), by team",
    ["team"],
)
TOKENLESS_LAST = Gauge(
    "cdrlog_tokenless_push_last_timestamp_seconds",
    "When a team last pushed an event without a token (Unix time)",
    ["team"],
    multiprocess_mode="max",
)
PUSHES_REFUSED = Counter(
    "cdrlog_pushes_refused",
    "Pushes refused for their token (401, 403), by team, URL (team or shared) and status",
    ["team", "url", "status"],
)

MAX_TEAM_LABELS = 1000
_team_labels: set[str] = set()


def team_label(team: str | None) -> str:
    """A team as a label, bounded: the URL names the team, and anyone may send one."""
    if team is None:
        return "(unknown)"
    if team in _team_labels:
        return team
    if len(_team_labels) >= MAX_TEAM_LABELS:
        return "(other)"
    _team_labels.add(team)
    return team


HOOK_DELIVERIES = Counter(
    "cdrlog_hook_deliveries",
    "Hook deliveries by outcome: delivered, retry (failed, tried again later), failed "
    "(given up on, kept), skipped (nothing newer or nothing the hook takes)",
    ["hook", "outcome"],
)
HOOK_BACKLOG = Gauge(
    "cdrlog_hook_backlog",
    "Deliveries waiting to be sent, per hook",
    ["hook"],
    multiprocess_mode="max",
)
HOOK_FAILED = Gauge(
    "cdrlog_hook_failed", "Deliveries given up on, per hook", ["hook"], multiprocess_mode="max"
)
HOOK_OLDEST_SECONDS = Gauge(
    "cdrlog_hook_oldest_pending_seconds",
    "Age of the oldest change not yet delivered, per hook",
    ["hook"],
    multiprocess_mode="max",
)
OUTBOX_WAITING = Gauge(
    "cdrlog_outbox_waiting",
    "Changes announced in the outbox, not yet handed to the hooks",
    multiprocess_mode="max",
)
