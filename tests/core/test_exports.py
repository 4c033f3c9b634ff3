"""exports: what a spreadsheet or a script receives."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrlog.core.exports import LocalTimes, capped, csv_chunks, jsonl_chunks, safe_cell, shown

UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+8613800138000", "'+8613800138000"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("=1+1", "'=1+1"),
        ("13800138000", "13800138000"),
        (42, "42"),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_neutralised(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_csv_has_a_header_and_one_line_per_row_even_when_empty() -> None:
    assert "".join(csv_chunks([], UTC_ZONE, ("a", "b"))) == "a,b\r\n"
    rows = [("x,y", None), ("=1", 2)]
    text = "".join(csv_chunks([rows], UTC_ZONE, ("src", "billsec")))
    assert list(csv.reader(io.StringIO(text))) == [["src", "billsec"], ["x,y", ""], ["'=1", "2"]]


def test_csv_is_one_chunk_per_batch_with_the_header_in_the_first() -> None:
    chunks = csv_chunks(([(n,)] for n in range(3)), UTC_ZONE, ("id",))
    assert next(chunks) == "id\r\n0\r\n"
    assert next(chunks) == "1\r\n"


def test_jsonl_is_one_object_per_line() -> None:
    text = "".join(jsonl_chunks([[(1, None)], [(2, "ü")]], UTC_ZONE, ("id", "src")))
    assert [json.loads(line) for line in text.splitlines()] == [
        {"id": 1, "src": None},
        {"id": 2, "src": "ü"},
    ]


def test_capped_stops_inside_a_batch() -> None:
    batches = [[(1,), (2,)], [(3,), (4,)], [(5,)]]
    assert list(capped(batches, 3)) == [[(1,), (2,)], [(3,)]]
    assert list(capped(batches, None)) == batches
    assert list(capped(batches, 2)) == [[(1,), (2,)]]


def test_csv_cells_are_neutralised_and_quoted_exactly() -> None:
    batch = [
        (1, "=1+1", "+8613800138000", 30),
        (2, "-2", "@SUM(A1)", None),
        (3, "a,b", 'say "hi"', 0),
        (4, "\tcmd", "two\nlines", 5),
        (5, "13800138000", "\r=x", 7),
    ]
    text = "".join(csv_chunks([batch], UTC_ZONE, ("id", "src", "dst", "billsec")))
    assert text == (
        "id,src,dst,billsec\r\n"
        "1,'=1+1,'+8613800138000,30\r\n"
        "2,'-2,'@SUM(A1),\r\n"
        '3,"a,b","say ""hi""",0\r\n'
        '4,\'\tcmd,"two\nlines",5\r\n'
        '5,13800138000,"\'\r=x",7\r\n'
    )


# What the module documents as a formula's start, written out here rather than taken
# from the module, so that the expectation is the documented rule, not the code's.
FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")


def documented_cell(value: object) -> str:
    """A cell as the module promises it: empty for None; the text, after an apostrophe
    when it starts as a formula would."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_FIRST) else text


texts = st.text(alphabet=st.sampled_from("ab1,\"\r\n=+-@\t '"), max_size=6)
rows = st.tuples(st.integers(0, 10**6), texts | st.none(), texts, st.none() | st.integers(0, 9))


@given(st.lists(st.lists(rows, max_size=5), max_size=4))
def test_csv_is_what_the_csv_module_writes_of_the_documented_cells(
    batches: list[list[Any]],
) -> None:
    columns = ("id", "src", "dst", "billsec")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for batch in batches:
        writer.writerows([[documented_cell(value) for value in row] for row in batch])
    assert "".join(csv_chunks(batches, UTC_ZONE, columns)) == buffer.getvalue()


zones = st.sampled_from(
    ["UTC", "Europe/Paris", "America/St_Johns", "Australia/Lord_Howe", "Asia/Kathmandu"]
).map(ZoneInfo)
moments = st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30))


@given(zones, st.lists(st.none() | moments, max_size=30), st.booleans())
def test_local_times_are_exactly_isoformat_in_the_zone(
    zone: ZoneInfo, values: list[datetime | None], as_text: bool
) -> None:
    """Across daylight saving changes (St John's changes at 02:00 local, Lord Howe by
    half an hour), for datetimes and for the text some drivers send instead."""
    expected = [
        None if v is None else v.replace(tzinfo=UTC).astimezone(zone).isoformat() for v in values
    ]
    given_values = [None if v is None or not as_text else v.isoformat(" ") for v in values]
    if not as_text:
        given_values = list(values)  # type: ignore[arg-type]
    local = LocalTimes(zone)
    assert local.column(given_values) == expected
    assert [local(v) for v in given_values] == expected


def test_a_batch_across_a_change_of_offset_keeps_each_value_exact() -> None:
    paris = ZoneInfo("Europe/Paris")
    around = [datetime(2026, 3, 29, 0, 59, 59), datetime(2026, 3, 29, 1, 0, 0)]
    assert LocalTimes(paris).column(around) == [
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00:00+02:00",
    ]


def test_times_are_shown_with_the_offset_of_the_zone() -> None:
    moment = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert shown({"t": moment, "n": 1}, ZoneInfo("Asia/Shanghai")) == {
        "t": "2026-01-05T14:00:00+08:00",
        "n": 1,
    }
