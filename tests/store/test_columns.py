"""A CDR's columns are `Cdr`'s fields; what spells them out again is held to them here.

The row converters and the export columns are derived from the fields. The `cdr` table,
the API's schema and the simulator's expected CDR are written out by hand (types and
descriptions read better there), so these tests keep them to the fields, in the fields'
order, and keep that order the one the README documents.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args, get_type_hints

from sqlalchemy import Engine, insert, select

from cdrlog.core.exports import CDR_COLUMNS, NUMBER_COLUMNS, TIME_COLUMNS
from cdrlog.core.record import CDR_COLUMN_OF, RECORD_COLUMNS, Cdr
from cdrlog.core.rules import Disposition, Status
from cdrlog.sim.traffic import ExpectedCdr
from cdrlog.store.tables import cdr, cdr_from_row, cdr_values
from cdrlog.web.schemas import CdrOut

README = Path(__file__).resolve().parents[2] / "README.md"
# The table's own columns: its row id first, when the row was written last.
ROW_ID = ["id"]
ROW_TIMES = ["created_at", "updated_at"]
# Which state of the CDR the row holds (`hooks` deliver it with the row).
ROW_VERSION = ["version"]


def documented_columns() -> list[str]:
    """The columns the README's table of the `cdr` table lists, in its order."""
    text = README.read_text("utf-8")
    section = text.split("## What you get: the `cdr` table", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`(\w+)`", line.split("|")[1])
    return names


def optional(annotation: Any) -> bool:
    return type(None) in get_args(annotation)


def bare(annotation: Any) -> Any:
    """The type an annotation allows besides None."""
    return next((arg for arg in get_args(annotation) if arg is not type(None)), annotation)


def column_types() -> dict[str, Any]:
    """Each record column's field annotation."""
    hints = get_type_hints(Cdr)
    return {column: hints[name] for name, column in CDR_COLUMN_OF.items()}


def test_the_exports_show_the_documented_columns_in_order() -> None:
    assert documented_columns() == list(CDR_COLUMNS)
    assert list(CDR_COLUMNS) == [*ROW_ID, *RECORD_COLUMNS, *ROW_TIMES, *ROW_VERSION]


def test_a_record_is_named_as_its_fields_but_for_the_team() -> None:
    assert list(CDR_COLUMN_OF) == [field.name for field in fields(Cdr)]
    assert {name: column for name, column in CDR_COLUMN_OF.items() if name != column} == {
        "team": "orgidentity"
    }


def test_the_table_holds_a_records_columns_between_its_own() -> None:
    assert [column.name for column in cdr.columns] == [
        *ROW_ID,
        *RECORD_COLUMNS,
        *ROW_TIMES,
        *ROW_VERSION,
    ]


def test_a_column_may_be_null_exactly_where_its_field_may_be_none() -> None:
    for column, annotation in column_types().items():
        assert cdr.c[column].nullable == optional(annotation), column
    for column in ROW_ID + ROW_TIMES + ROW_VERSION:
        assert not cdr.c[column].nullable, column


def test_the_api_shows_the_table_columns_in_order_null_where_they_may_be() -> None:
    assert list(CdrOut.model_fields) == [column.name for column in cdr.columns]
    for name, info in CdrOut.model_fields.items():
        assert optional(info.annotation) == cdr.c[name].nullable, name


def test_the_exports_format_times_and_numbers_as_the_record_types_them() -> None:
    typed = {column: bare(annotation) for column, annotation in column_types().items()}
    times = {column for column, kind in typed.items() if kind is datetime}
    numbers = {column for column, kind in typed.items() if kind is int}
    assert times | set(ROW_TIMES) == TIME_COLUMNS
    assert numbers | set(ROW_ID) | set(ROW_VERSION) == NUMBER_COLUMNS


def test_the_simulators_expected_cdr_has_the_records_fields_in_order() -> None:
    assert [field.name for field in fields(ExpectedCdr)] == list(CDR_COLUMN_OF)


def test_a_record_comes_back_from_its_row_unchanged(engine: Engine) -> None:
    start = datetime(2024, 3, 5, 9, 0, 1, 250000, tzinfo=UTC)
    record = Cdr(
        team="team1",
        diallogid="call-1",
        calltype="dialin",
        target="DialIn",
        src="13800000000",
        dst="8001",
        agentno="1001",
        starttime=start,
        answertime=start.replace(second=5),
        endtime=start.replace(minute=2),
        duration=119,
        billsec=115,
        disposition=Disposition.ANSWER,
        status=Status.CLOSED,
        did="4000",
        agent_group="100",
        hold_seconds=30,
        transferred_to="8002",
    )
    values = cdr_values(record)
    assert list(values) == list(RECORD_COLUMNS)
    with engine.begin() as connection:
        connection.execute(insert(cdr).values(values | {"created_at": start, "updated_at": start}))
        row = connection.execute(select(cdr)).one()

    assert row.disposition == "ANSWER"
    assert row.status == "closed"
    back = cdr_from_row(row)
    assert back == record
    assert (type(back.disposition), type(back.status)) == (Disposition, Status)
