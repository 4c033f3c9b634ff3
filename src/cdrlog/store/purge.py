"""Retention: deleting CDRs, journal rows, call sessions and dead letters older than a cut.

A call's CDR and its journal rows go together, because a CDR is the fold of its journal:
a call whose CDR is deleted (its `starttime` before the cut) loses all its events and
its `call_session` row, whenever they were received; a call with no CDR loses them only
once every one of its events was received before the cut; a call whose CDR is kept
keeps every event. Events of no call (agent logins) and dead letters go by
`received_at`. Agents stay: the registry is current state, not history.

The work is done a batch at a time (up to `batch` rows of the table being walked, in
index order from where the last batch stopped), one short transaction each, so no
table is locked for long and a purge can run beside the receiver. Each call's
`call_session` row is locked, as ingest locks it, before the call is deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
)

from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import call_event, call_session, cdr, dead_letter, pairs_in

# Rows a batch selects from the table it walks. A CDR brings its call (about seven journal
# rows and a session), so 1,000 CDRs are ~9,000 rows: about 0.5 s of SQLite's one write
# lock on a busy 2-core machine, where 5,000 held it 2.5 s for the same total time.
DEFAULT_BATCH = 1000

CallKey = tuple[str, str]
# Where a walk stopped: the time column and id of the last row it took.
Position = tuple[datetime, int]
Step = tuple[Position, Counter[str]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """Rows deleted per table (in a dry run: that would be), and the transactions used."""

    cdr: int
    call_event: int
    call_session: int
    dead_letter: int
    batches: int


def purge(
    engine: Engine,
    cut: datetime,
    *,
    team: str | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    keep_going: Callable[[], bool] | None = None,
) -> PurgeCounts:
    """Delete what is older than `cut` (aware), of `team` only if given. A dry run
    reads the same batches in read-only transactions and counts what would go; on a
    database nobody writes to meanwhile, its counts equal those of the real run.
    `keep_going` is asked before each batch: once it says no, the purge stops there
    (what is committed stays deleted; the next purge takes the rest)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    run = _Purge(engine, cut, team, batch, dry_run, keep_going or _always)
    run.walk(run.cdr_batch)
    run.walk(run.journal_batch)
    run.walk(run.dead_letter_batch)
    tally = run.tally
    return PurgeCounts(
        cdr=tally["cdr"],
        call_event=tally["call_event"],
        call_session=tally["call_session"],
        dead_letter=tally["dead_letter"],
        batches=tally["batches"],
    )


class _Purge:
    def __init__(
        self,
        engine: Engine,
        cut: datetime,
        team: str | None,
        batch: int,
        dry_run: bool,
        keep_going: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.cut = cut
        self.team = team
        self.batch = batch
        self.dry_run = dry_run
        self.keep_going = keep_going
        self.tally: Counter[str] = Counter()

    def walk(self, step: Callable[[Connection, Position | None], Step | None]) -> None:
        """Run `step` a transaction at a time until it finds nothing more (or is stopped)."""
        position: Position | None = None
        while self.keep_going() and (done := self._run(_resumed(step, position))) is not None:
            # Counted only once committed: `in_transaction` may run a step again.
            position, counts = done
            self.tally.update(counts)
            self.tally["batches"] += 1

    def _run(self, work: Callable[[Connection], T]) -> T:
        if not self.dry_run:
            return in_transaction(self.engine, work)
        with self.engine.connect() as connection:
            return work(read_only(connection))

    def cdr_batch(self, connection: Connection, after: Position | None) -> Step | None:
        columns = (cdr.c.orgidentity, cdr.c.diallogid)
        rows = connection.execute(self._page(cdr, cdr.c.starttime, columns, after)).all()
        if not rows:
            return None
        self._lock(connection, [(row.orgidentity, row.diallogid) for row in rows])
        # Under the locks: an event that arrived meanwhile may have moved a start.
        still = connection.execute(
            select(cdr.c.id, *columns).where(
                cdr.c.id.in_([row.id for row in rows]), cdr.c.starttime < self.cut
            )
        ).all()
        counts = self._calls(connection, [(row.orgidentity, row.diallogid) for row in still])
        if still:
            counts["cdr"] = self._delete(connection, cdr, cdr.c.id.in_([r.id for r in still]))
        return (rows[-1].starttime, rows[-1].id), counts

    def journal_batch(self, connection: Connection, after: Position | None) -> Step | None:
        columns = (call_event.c.orgidentity, call_event.c.sessionid)
        rows = connection.execute(self._page(call_event, call_event.c.received_at, columns, after))
        page = rows.all()
        if not page:
            return None
        calls = sorted({(r.orgidentity, r.sessionid) for r in page if r.sessionid is not None})
        self._lock(connection, calls)
        counts = self._calls(connection, self._unpaired(connection, calls, after))
        # Agent events belong to no call: they go by their own age.
        loose = [row.id for row in page if row.sessionid is None]
        if loose:
            counts["call_event"] += self._delete(connection, call_event, call_event.c.id.in_(loose))
        return (page[-1].received_at, page[-1].id), counts

    def dead_letter_batch(self, connection: Connection, after: Position | None) -> Step | None:
        query = self._page(dead_letter, dead_letter.c.received_at, (), after)
        page = connection.execute(query).all()
        if not page:
            return None
        ids = [row.id for row in page]
        counts = Counter(
            {"dead_letter": self._delete(connection, dead_letter, dead_letter.c.id.in_(ids))}
        )
        return (page[-1].received_at, page[-1].id), counts

    def _unpaired(
        self, connection: Connection, calls: Sequence[CallKey], after: Position | None
    ) -> list[CallKey]:
        """The calls without a CDR whose events all came before the cut and that no
        earlier batch met (a dry run deletes nothing, so it meets them again)."""
        if not calls:
            return []
        with_cdr = {
            (row.orgidentity, row.diallogid)
            for row in connection.execute(
                select(cdr.c.orgidentity, cdr.c.diallogid).where(
                    pairs_in(cdr.c.orgidentity, cdr.c.diallogid, calls)
                )
            )
        }
        first: dict[CallKey, Position] = {}
        newest: dict[CallKey, datetime] = {}
        for row in connection.execute(
            select(
                call_event.c.orgidentity,
                call_event.c.sessionid,
                call_event.c.received_at,
                call_event.c.id,
            ).where(pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls))
        ):
            key, at = (row.orgidentity, row.sessionid), (row.received_at, row.id)
            first[key] = min(first.get(key, at), at)
            newest[key] = max(newest.get(key, at[0]), at[0])
        return [
            key
            for key in calls
            if key not in with_cdr
            and key in newest
            and newest[key] < self.cut
            and (after is None or first[key] > after)
        ]

    def _calls(self, connection: Connection, calls: Sequence[CallKey]) -> Counter[str]:
        """Delete the calls' journal rows and session rows (their CDRs are the caller's)."""
        counts: Counter[str] = Counter()
        if calls:
            events = pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls)
            sessions = pairs_in(call_session.c.orgidentity, call_session.c.sessionid, calls)
            counts["call_event"] = self._delete(connection, call_event, events)
            counts["call_session"] = self._delete(connection, call_session, sessions)
        return counts

    def _page(
        self,
        table: Table,
        moment: Column[Any],
        columns: Sequence[Column[Any]],
        after: Position | None,
    ) -> Select[Any]:
        """The next `batch` rows older than the cut, in (moment, id) order: an index
        range on every backend, so a batch costs its own rows, not the table."""
        identity: Column[Any] = table.c.id
        query = select(identity, moment, *columns).where(moment < self.cut)
        if self.team is not None:
            query = query.where(table.c.orgidentity == self.team)
        if after is not None:
            query = query.where(moment >= after[0], _after(moment, identity, after))
        return query.order_by(moment, identity).limit(self.batch)

    def _lock(self, connection: Connection, calls: Sequence[CallKey]) -> None:
        if self.dry_run or not calls:
            return
        # In key order, as ingest takes them, so the two cannot deadlock.
        connection.execute(
            select(call_session.c.id)
            .where(pairs_in(call_session.c.orgidentity, call_session.c.sessionid, calls))
            .order_by(call_session.c.orgidentity, call_session.c.sessionid)
            .with_for_update()
        ).all()

    def _delete(self, connection: Connection, table: Table, where: ColumnElement[bool]) -> int:
        if self.dry_run:
            counted = connection.execute(select(func.count()).select_from(table).where(where))
            return int(counted.scalar_one())
        return int(connection.execute(delete(table).where(where)).rowcount)


def _always() -> bool:
    return True


def _resumed(
    step: Callable[[Connection, Position | None], Step | None], after: Position | None
) -> Callable[[Connection], Step | None]:
    return lambda connection: step(connection, after)


def _after(moment: Column[Any], identity: Column[Any], after: Position) -> ColumnElement[bool]:
    """(moment, id) > after, written as two comparisons every backend can index."""
    return or_(moment > after[0], and_(moment == after[0], identity > after[1]))
