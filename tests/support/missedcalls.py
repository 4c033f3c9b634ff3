"""CDRs of missed calls and what followed them, written straight into the `cdr` table:
the missed-call reads only read CDRs, however they were folded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from cdrlog.store.tables import cdr

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def row(
    diallogid: str,
    calltype: str,
    *,
    team: str = "team1",
    at: float = 0,
    waited: float = 30,
    answered: bool = False,
    src: str | None = None,
    dst: str | None = None,
    agentno: str | None = None,
    queue: str | None = "100",
    status: str = "closed",
) -> dict[str, Any]:
    """A CDR `at` hours after T0: answered `waited` seconds in, else ended then."""
    start = T0 + timedelta(hours=at)
    settled = start + timedelta(seconds=waited)
    end = None if status == "open" else settled + timedelta(seconds=60 if answered else 0)
    return {
        "orgidentity": team,
        "diallogid": diallogid,
        "calltype": calltype,
        "target": "DialIn" if calltype == "dialin" else "DialOut",
        "src": src,
        "dst": dst,
        "agentno": agentno,
        "starttime": start,
        "answertime": settled if answered else None,
        "endtime": end,
        "duration": None if end is None else round((end - start).total_seconds()),
        "billsec": None if end is None else 60 if answered else 0,
        "disposition": "ANSWER" if answered else "NOANSWER",
        "status": status,
        "agent_group": queue,
        "created_at": start,
        "updated_at": start,
    }


def missed(diallogid: str, number: str | None, **kw: Any) -> dict[str, Any]:
    return row(diallogid, "dialin", src=number, dst="8001", agentno="1001", **kw)


def callback(diallogid: str, number: str, **kw: Any) -> dict[str, Any]:
    given: dict[str, Any] = {"answered": True, "agentno": "1002"}
    return row(diallogid, "dialout", src="8002", dst=number, **(given | kw))


def call_in(diallogid: str, number: str, **kw: Any) -> dict[str, Any]:
    given: dict[str, Any] = {"answered": True, "agentno": "1003"}
    return row(diallogid, "dialin", src=number, dst="8003", **(given | kw))


def store(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(cdr), rows)


# Two teams, each with calls to the other's customers' numbers (the same numbers): a
# reader of one team must see none of the other's calls, nor count its callbacks.
WORLD = [
    missed("a-reached", "111", at=0),
    callback("a-back", "111", at=1),
    missed("a-unreached", "222", at=2),
    callback("a-tried", "222", at=3, answered=False),
    missed("a-returned", "333", at=4, queue="200"),
    call_in("a-in", "333", at=5),
    missed("a-late", "444", at=6),
    callback("a-too-late", "444", at=31),
    missed("a-misdial", "555", at=7, waited=3),
    missed("a-open", "666", at=8, status="open"),
    row("a-answered", "dialin", src="777", at=9, answered=True),
    missed("z-missed", "222", at=2.5, team="team2"),
    callback("z-back-222", "222", at=2.7, team="team2"),
    callback("z-back-444", "444", at=7, team="team2"),
]
