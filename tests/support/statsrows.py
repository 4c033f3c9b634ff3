"""A queue's statistics row from its counts alone, for tests of what is worked out from
rows (today's rates, alerts)."""

from __future__ import annotations

from cdrlog.core.report import StatsRow


def queue_row(
    team: str, queue: str, offered: int, short: int, abandoned: int, within: int
) -> StatsRow:
    """`offered` inbound calls, of which `short` short abandons, `abandoned` others
    abandoned, and `within` answered within the service level."""
    return StatsRow(
        group=queue,
        team=team,
        calls=offered,
        answered=offered - short - abandoned,
        unanswered=short + abandoned,
        busy=0,
        failed=0,
        asr=0.0,
        acd=None,
        talk_time=0,
        avg_ring_time=None,
        offered=offered,
        short_abandoned=short,
        abandoned=abandoned,
        answered_within=within,
    )
