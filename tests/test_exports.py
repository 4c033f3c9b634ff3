"""exports: what a spreadsheet or a script receives."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cdrlog.exports import csv_lines, jsonl_lines, safe_cell, shown


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+8613800138000", "'+8613800138000"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("13800138000", "13800138000"),
        (42, "42"),
        (None, ""),
    ],
)
def test_cells_a_spreadsheet_would_run_are_neutralised(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_csv_has_a_header_and_one_line_per_row_even_when_empty() -> None:
    assert "".join(csv_lines([], ("a", "b"))) == "a,b\r\n"
    text = "".join(csv_lines([{"a": "x,y", "b": None}, {"a": "=1", "b": 2}], ("a", "b")))
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["x,y", ""], ["'=1", "2"]]


def test_csv_is_yielded_row_by_row() -> None:
    lines = csv_lines(({"a": n} for n in range(3)), ("a",))
    assert next(lines) == "a\r\n0\r\n"
    assert next(lines) == "1\r\n"


def test_jsonl_is_one_object_per_line() -> None:
    text = "".join(jsonl_lines([{"a": 1}, {"b": "ü"}]))
    assert [json.loads(line) for line in text.splitlines()] == [{"a": 1}, {"b": "ü"}]


def test_times_are_shown_with_the_offset_of_the_zone() -> None:
    moment = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert shown({"t": moment, "n": 1}, ZoneInfo("Asia/Shanghai")) == {
        "t": "2026-01-05T14:00:00+08:00",
        "n": 1,
    }
