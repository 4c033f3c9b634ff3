"""Which database errors a write transaction is run again after, and under what name
the retry is counted: the drivers' own errors, as each raises them."""

from __future__ import annotations

import sqlite3

import psycopg.errors
import pymysql.err
import pytest
from sqlalchemy.exc import OperationalError

from cdrlog.store.database import RetryKind, is_transient, retry_kind


@pytest.mark.parametrize(
    ("driver_error", "kind"),
    [
        # PyMySQL also sets `sqlstate`: 40001 on a deadlock, HY000 on a lock wait timeout.
        (pymysql.err.OperationalError(1213, "Deadlock found", sqlstate="40001"), "deadlock"),
        (pymysql.err.OperationalError(1205, "Lock wait timeout", sqlstate="HY000"), "lock_timeout"),
        (psycopg.errors.DeadlockDetected("deadlock detected"), "deadlock"),
        (psycopg.errors.SerializationFailure("could not serialize"), "serialization"),
        (sqlite3.OperationalError("database is locked"), "locked"),
    ],
)
def test_a_transient_error_is_retried_and_named_by_its_kind(
    driver_error: Exception, kind: RetryKind
) -> None:
    error = OperationalError("SELECT 1", {}, driver_error)
    assert is_transient(error)
    assert retry_kind(error) == kind


@pytest.mark.parametrize(
    "driver_error",
    [
        pymysql.err.OperationalError(1062, "Duplicate entry", sqlstate="23000"),
        pymysql.err.OperationalError(1406, "Data too long", sqlstate="22001"),
        psycopg.errors.UniqueViolation("duplicate key"),
        sqlite3.OperationalError("no such table: cdr"),
    ],
)
def test_any_other_error_is_not_retried(driver_error: Exception) -> None:
    assert not is_transient(OperationalError("SELECT 1", {}, driver_error))
