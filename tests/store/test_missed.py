"""Missed calls read from each database: which calls are abandoned, which follow-ups
count, paging, and the teams a reader may see."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from cdrlog.core.missed import MissedCall, MissedFilter
from cdrlog.store.missed import every_missed, missed_page
from cdrlog.store.reader import Reader
from support.missedcalls import T0, WORLD, missed, store


def listed(engine: Engine, wanted: MissedFilter) -> dict[str, MissedCall]:
    found = [m for batch in every_missed(Reader(engine), wanted) for m in batch]
    return {m.call.diallogid: m for m in found}


def test_abandoned_calls_and_what_followed(engine: Engine) -> None:
    store(engine, WORLD)
    found = listed(engine, MissedFilter(teams=("team1",)))
    assert list(found) == ["a-late", "a-returned", "a-unreached", "a-reached"]
    reached, unreached = found["a-reached"], found["a-unreached"]
    assert reached.called_back_at == T0 + timedelta(hours=1)
    assert (reached.callback_answered, reached.callback_agent, reached.resolved) == (
        True,
        "1002",
        True,
    )
    # team2's answered callback to the same number is not team1's.
    assert (unreached.callbacks, unreached.callback_answered, unreached.resolved) == (
        1,
        False,
        False,
    )
    assert found["a-returned"].got_through_at == T0 + timedelta(hours=5)
    assert found["a-returned"].resolved
    assert (found["a-late"].callbacks, found["a-late"].resolved) == (0, False)


def test_filters(engine: Engine) -> None:
    store(engine, WORLD)
    team1 = MissedFilter(teams=("team1",))
    assert set(listed(engine, MissedFilter(teams=("team1",), unresolved=True))) == {
        "a-unreached",
        "a-late",
    }
    assert set(listed(engine, MissedFilter(teams=("team1",), agent_group="200"))) == {"a-returned"}
    ranged = MissedFilter(
        start_from=T0 + timedelta(hours=1), start_to=T0 + timedelta(hours=4), teams=("team1",)
    )
    assert set(listed(engine, ranged)) == {"a-unreached"}
    assert set(listed(engine, MissedFilter(teams=("team1",), short_abandon=timedelta(0)))) == {
        *listed(engine, team1),
        "a-misdial",
    }
    longer = MissedFilter(teams=("team1",), window=timedelta(hours=30))
    assert listed(engine, longer)["a-late"].callbacks == 1
    assert set(listed(engine, MissedFilter(teams=()))) == set()
    assert set(listed(engine, MissedFilter())) == {*listed(engine, team1), "z-missed"}


def test_the_short_abandon_limit_is_exact(engine: Engine) -> None:
    store(engine, [missed("five", "1", waited=5), missed("almost", "2", at=1, waited=4.999)])
    assert set(listed(engine, MissedFilter())) == {"five"}


def test_pages_walk_every_missed_call_once(engine: Engine) -> None:
    rows = [missed(f"m{i}", f"9{i % 7}", at=i / 10) for i in range(23)]
    store(engine, rows)
    reader, wanted = Reader(engine), MissedFilter()
    seen: list[str] = []
    page = missed_page(reader, wanted, None, 5)
    seen += [m.call.diallogid for m in page.rows]
    while page.next_cursor is not None:
        page = missed_page(reader, wanted, page.next_cursor, 5)
        seen += [m.call.diallogid for m in page.rows]
    assert seen == [f"m{i}" for i in reversed(range(23))]
    # Calls stored after the first page do not shift the pages that follow it.
    first = missed_page(reader, wanted, None, 5)
    store(engine, [missed("newcomer", "1", at=-1)])
    assert first.next_cursor is not None
    rest = missed_page(reader, wanted, first.next_cursor, 100)
    assert "newcomer" not in {m.call.diallogid for m in rest.rows}
    assert rest.next_cursor is None
