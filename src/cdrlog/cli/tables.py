"""Tables for a terminal: they fit its width by wrapping a cell, never by cutting a
heading or a figure short (rich's default for cells that may not wrap)."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from cdrlog.core.report import GroupBy, StatsRow

FIGURES = ("calls", "ans", "noans", "busy", "fail", "ASR", "ACD s", "talk s", "ring s")


def fitted_table(*headings: str, right: Sequence[str] = (), lined: bool = True) -> Table:
    """A table whose cells wrap (folding a word longer than its column) when the
    terminal is narrow; the headings in `right` are aligned right (figures). `lined`:
    rich's lines around cells (listings); else only spaces between columns (figures)."""
    # Unlined: one space between columns and none at the edges, so that an hourly
    # statistics table takes 80 columns rather than 96.
    table = (
        Table(header_style="bold", box=box.HEAVY_HEAD)
        if lined
        else Table(box=None, header_style="bold", padding=(0, 1, 0, 0), pad_edge=False)
    )
    for heading in headings:
        table.add_column(heading, justify="right" if heading in right else "left", overflow="fold")
    return table


def stats_table(rows: Sequence[StatsRow], group_by: GroupBy) -> None:
    """Statistics rows as a table on stdout."""
    # An agent number or a queue is a team's own: the same one may be in several teams.
    by_agent = group_by in (GroupBy.AGENT, GroupBy.QUEUE)
    headings = (group_by.value, *(["team"] if by_agent else []), *FIGURES)
    table = fitted_table(*headings, right=FIGURES, lined=False)
    # A day or an hour with its offset reads only whole: the headings wrap instead.
    table.columns[0].no_wrap = True
    for row in rows:
        figures = [
            str(row.calls),
            str(row.answered),
            str(row.unanswered),
            str(row.busy),
            str(row.failed),
            f"{row.asr:.1%}",
            _number(row.acd),
            str(row.talk_time),
            _number(row.avg_ring_time),
        ]
        table.add_row(row.group, *([row.team or ""] if by_agent else []), *figures)
    Console().print(table)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
