"""spool: durable files of events that wait for the database."""

from __future__ import annotations

import fcntl
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import Rejection, fingerprint, parse_event
from cdrlog.service.spool import Spool, SpooledEvent, SpoolUnavailable


def accepted(sessionid: str) -> Accepted:
    fields = {
        "sessionid": sessionid,
        "calltype": "dialin",
        "source": "CALLER",
        "event": "ringing",
        "activenum": "13800138000",
        "eventTime": "2026-11-26 10:00:00",
    }
    event = parse_event(fields, url_team="team1", pbx_timezone=ZoneInfo("UTC"))
    assert not isinstance(event, Rejection)
    return Accepted(event, fields, fingerprint("team1", fields))


def drained(spool: Spool) -> list[SpooledEvent]:
    seen: list[SpooledEvent] = []
    spool.drain(seen.extend)
    return seen


def test_spooled_events_come_back_in_order_and_the_files_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([accepted("a"), accepted("b")])
    spool.append([accepted("c")])
    assert spool.depth() == 3
    events = drained(spool)
    assert [e.fields["sessionid"] for e in events] == ["a", "b", "c"]
    assert {e.team for e in events} == {"team1"}
    assert spool.depth() == 0
    assert list(tmp_path.iterdir()) == []


def test_appends_after_a_drain_go_to_a_new_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([accepted("a")])
    assert len(drained(spool)) == 1
    spool.append([accepted("b")])
    assert [e.fields["sessionid"] for e in drained(spool)] == ["b"]


def test_a_failed_store_keeps_the_file_for_the_next_try(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([accepted("a")])

    def unreachable(batch: list[SpooledEvent]) -> None:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        spool.drain(unreachable)
    assert spool.depth() == 1
    assert len(drained(spool)) == 1


def test_a_torn_last_line_was_never_acknowledged_and_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([accepted("a")])
    spool.close()
    [path] = list(tmp_path.glob("spool-*.jsonl"))
    with path.open("ab") as file:
        file.write(b'{"team": "team1", "fields": {"sessi')
    assert [e.fields["sessionid"] for e in drained(spool)] == ["a"]


def test_a_file_another_process_appends_to_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / f"spool-{datetime.now(UTC).timestamp():.0f}-other.jsonl"
    other.write_bytes(b'{"team": "t", "fields": {"sessionid": "x"}}\n')
    with other.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert drained(Spool(tmp_path)) == []
    assert [e.fields["sessionid"] for e in drained(Spool(tmp_path))] == ["x"]


def test_a_spool_that_cannot_write_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(SpoolUnavailable):
        Spool(blocker / "spool").append([accepted("a")])
