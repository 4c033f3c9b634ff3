"""Metrics count what was committed: a transaction that runs again after a lost link or
a deadlock counts its CDRs once, and a rebuild's dry run (rolled back) counts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from cdrlog.service.ingest import Ingestor
from cdrlog.service.rebuild import Selection, rebuild
from support.legs import T0, accepted, outbound


def created(disposition: str) -> float:
    value = REGISTRY.get_sample_value("cdrlog_cdrs_created_total", {"disposition": disposition})
    return value or 0.0


def cdr_counts() -> float:
    """Every CDR created or closed so far, whatever its disposition."""
    names = ("cdrlog_cdrs_created_total", "cdrlog_cdrs_closed_total")
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name in names
    )


@pytest.fixture
def link_lost_once(engine: Engine) -> Iterator[list[str]]:
    """The first commit of the test fails as a lost connection would, after all of the
    transaction's work was done: `in_transaction` then runs it all again."""
    failed: list[str] = []

    def fail_once(connection: Any) -> None:
        if not failed:
            failed.append("commit")
            raise OperationalError(
                "COMMIT", {}, Exception("link lost"), connection_invalidated=True
            )

    event.listen(engine, "commit", fail_once)
    yield failed
    event.remove(engine, "commit", fail_once)


def test_a_transaction_run_twice_counts_its_cdrs_once(
    engine: Engine, link_lost_once: list[str]
) -> None:
    ingestor = Ingestor(engine)
    before = created("ANSWER")
    ingestor.ingest_many([accepted(fields) for fields in outbound("metrics-1")])
    assert link_lost_once, "the insert never failed: the retry was not exercised"
    assert created("ANSWER") == before + 1


def test_a_dry_run_rebuild_counts_nothing(engine: Engine) -> None:
    # Still ringing a minute in; a day later the rebuild's fold closes it as timeout.
    ringing = [fields for fields in outbound("metrics-2") if fields["event"] == "ringing"]
    Ingestor(engine, clock=lambda: T0 + timedelta(minutes=1)).ingest_many(
        [accepted(fields) for fields in ringing]
    )
    later = Ingestor(engine, clock=lambda: T0 + timedelta(days=1))
    before = cdr_counts()
    summary = rebuild(later, ZoneInfo("UTC"), Selection(), dry_run=True)
    assert summary.cdrs_changed == 1  # the rolled-back change was made
    assert cdr_counts() == before
