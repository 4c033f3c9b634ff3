"""`cdrlog replay` and `cdrlog rejected export`, on every backend.

Replayed traffic must give exactly the CDRs its calls' scripts demand (what pushing the
same events over HTTP gives), whatever the file's format; replaying again changes
nothing; refused lines are counted and named; a dead-letter export goes back in once
the problem is fixed.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cdrlog.cli.ops import replay
from cdrlog.cli.rejected import rejected_export
from cdrlog.core.events import Rejection
from cdrlog.service.ingest import Ingestor
from cdrlog.service.intake import JSON_TYPE, Body, Intake
from cdrlog.service.replay import FORM_TYPE, Replayer, body_of
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import (
    ExpectedCdr,
    GeneratedCall,
    delivery_order,
    generate_calls,
    stored_as_expected,
)
from cdrlog.store.database import make_engine
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.tables import call_event, cdr, dead_letter
from conftest import Backend

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
Events = list[dict[str, str]]
CallKey = tuple[str, str]


@pytest.fixture(scope="module")
def calls() -> list[GeneratedCall]:
    return generate_calls(
        random.Random(41), START, calls=40, teams=2, agents=3, time_format="mixed"
    )


def run(*arguments: str, command: Any = replay, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(command, list(arguments), input=stdin, catch_exceptions=False)


def tally(output: str) -> dict[str, int]:
    """The counts of a replay's summary line."""
    pattern = (
        r"([\d,]+) lines read \(([\d,]+) blank or comments\): ([\d,]+) events accepted "
        r"\(([\d,]+) stored, ([\d,]+) duplicate\), ([\d,]+) rejected"
    )
    found = re.search(pattern, output)
    assert found is not None, output
    names = ("lines", "skipped", "accepted", "stored", "duplicate", "rejected")
    return {
        name: int(value.replace(",", "")) for name, value in zip(names, found.groups(), strict=True)
    }


def write(path: Path, lines: Sequence[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def stored_cdrs(engine: Engine) -> dict[CallKey, ExpectedCdr]:
    with engine.connect() as connection:
        rows = connection.execute(select(cdr)).all()
    return {(row.orgidentity, row.diallogid): stored_as_expected(row._mapping) for row in rows}


def expected_cdrs(calls: Sequence[GeneratedCall]) -> dict[CallKey, ExpectedCdr]:
    return {(c.expected.team, c.expected.diallogid): c.expected for c in calls}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def replay_each_team(
    backend: Backend,
    events: Sequence[tuple[str, dict[str, str]]],
    folder: Path,
    kind: str,
    *options: str,
) -> Counter[str]:
    """Replay (team, event) pairs as asterCC's own events are replayed: they name no
    team, so each team's go, in the order given, in a file of `kind` of their own,
    replayed with `--team`. The counts of the replays' summaries, added up."""
    by_team: defaultdict[str, Events] = defaultdict(list)
    for team, event in events:
        by_team[team].append(event)
    counts: Counter[str] = Counter()
    for team, own in sorted(by_team.items()):
        path = write(folder / f"{kind}-{team}.txt", FORMATS[kind](own))
        result = run(path, "--db", backend.url, "--team", team, *options)
        assert result.exit_code == 0, result.output
        counts.update(tally(result.output))
    return counts


FORMATS: dict[str, Callable[[Events], list[str]]] = {
    "json-objects": lambda events: [json.dumps(event) for event in events],
    "json-arrays": lambda events: [json.dumps(events[n : n + 7]) for n in range(0, len(events), 7)],
    "form": lambda events: [urlencode(event) for event in events],
}


@pytest.mark.parametrize("kind", list(FORMATS))
def test_each_format_gives_the_cdrs_its_calls_demand(
    backend: Backend, engine: Engine, calls: list[GeneratedCall], tmp_path: Path, kind: str
) -> None:
    deliveries = delivery_order(calls, random.Random(5), duplicate_ratio=0.1, shuffle_ratio=0.5)
    events = [(delivery.team, delivery.event) for delivery in deliveries]
    counts = replay_each_team(backend, events, tmp_path, kind, "--batch", "50")
    distinct = sum(len(call.events) + len(call.agent_events) for call in calls)
    assert counts["stored"] == distinct
    assert counts["duplicate"] == len(events) - distinct
    assert counts["rejected"] == 0
    assert stored_cdrs(engine) == expected_cdrs(calls)
    assert count(engine, call_event) == distinct


def test_replaying_twice_changes_nothing(
    backend: Backend, engine: Engine, calls: list[GeneratedCall], tmp_path: Path
) -> None:
    events = [(call.team, event) for call in calls for event in (*call.events, *call.agent_events)]
    replay_each_team(backend, events, tmp_path, "json-objects")
    with engine.connect() as connection:
        before = connection.execute(select(cdr).order_by(cdr.c.id)).all()
        journal = connection.execute(select(call_event).order_by(call_event.c.id)).all()
    counts = replay_each_team(backend, events, tmp_path, "json-objects", "--batch", "17")
    assert (counts["stored"], counts["duplicate"], counts["rejected"]) == (0, len(events), 0)
    with engine.connect() as connection:
        assert connection.execute(select(cdr).order_by(cdr.c.id)).all() == before
        assert connection.execute(select(call_event).order_by(call_event.c.id)).all() == journal


def mixed_lines(events: Events) -> list[str]:
    """Five refusals among good events, comments and blank lines (for --team team1)."""
    bad_time = events[3] | {"eventTime": "yesterday"}
    no_session = {k: v for k, v in events[2].items() if k != "sessionid"}
    return [
        "# exported 2026-11-20",
        json.dumps(events[0]),
        "",
        "{not json",
        urlencode(events[1]),
        urlencode(no_session),
        json.dumps([events[3], bad_time, 42, events[4]]),
        json.dumps(events[5] | {"orgidentity": "team2"}),
        "   ",
    ]


def test_mixed_lines_are_counted_and_the_refused_named(
    backend: Backend, engine: Engine, calls: list[GeneratedCall], tmp_path: Path
) -> None:
    events = [e for call in calls if call.team == "team1" for e in call.events][:6]
    path = write(tmp_path / "mixed.txt", mixed_lines(events))
    result = run(path, "--db", backend.url, "--team", "team1")
    assert result.exit_code == 1
    assert tally(result.output) == {
        "lines": 9,
        "skipped": 3,
        "accepted": 4,
        "stored": 4,
        "duplicate": 0,
        "rejected": 5,
    }
    for where in (":4: body", ":6: sessionid", ":7[1]: eventTime", ":7[2]: body", ":8: orgid"):
        assert f"mixed.txt{where}" in result.output
    assert count(engine, call_event) == 4
    assert count(engine, dead_letter) == 0


def test_refused_lines_become_dead_letters_when_asked(
    backend: Backend, engine: Engine, calls: list[GeneratedCall], tmp_path: Path
) -> None:
    events = [e for call in calls if call.team == "team1" for e in call.events][:6]
    path = write(tmp_path / "mixed.txt", mixed_lines(events))
    result = run(path, "--db", backend.url, "--team", "team1", "--dead-letter")
    assert result.exit_code == 1
    assert "5 refused kept as dead letters" in result.output
    with engine.connect() as connection:
        letters = {row.path: row for row in connection.execute(select(dead_letter))}
    assert set(letters) == {f"replay:{path}:{where}" for where in ("4", "6", "7[1]", "7[2]", "8")}
    item = letters[f"replay:{path}:7[1]"]
    assert json.loads(item.body)["eventTime"] == "yesterday"
    assert (item.content_type, item.orgidentity) == (JSON_TYPE, "team1")
    assert letters[f"replay:{path}:6"].content_type == FORM_TYPE


def push_refused(client: TestClient, calls: list[GeneratedCall]) -> list[GeneratedCall]:
    """Push a team1 call to the generic URL without its team (all refused), and a team2
    call whose hangups carry a time the receiver cannot read (those refused)."""
    lost = next(call for call in calls if call.team == "team1")
    for event in lost.events:
        body = urlencode({k: v for k, v in event.items() if k != "orgidentity"})
        answer = client.post("/astercc/events", content=body, headers={"content-type": FORM_TYPE})
        assert answer.status_code == 400
    late = next(call for call in calls if call.team == "team2")
    for event in late.events:
        hangup = event["event"] == "hangup"
        sent = event | {"eventTime": event["eventTime"] + " PBX"} if hangup else event
        answer = client.post("/astercc/team2/events", json=sent)
        assert answer.status_code == (400 if hangup else 200)
    return [lost, late]


def test_a_dead_letter_export_replays_after_a_fix(
    backend: Backend,
    client: TestClient,
    engine: Engine,
    calls: list[GeneratedCall],
    tmp_path: Path,
) -> None:
    lost, late = push_refused(client, calls)
    hangups = sum(event["event"] == "hangup" for event in late.events)
    exported = tmp_path / "rejected.jsonl"
    assert run("--db", backend.url, "-o", str(exported), command=rejected_export).exit_code == 0
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count(engine, dead_letter) == len(lost.events) + hangups
    unfixed = run(str(exported), "--db", backend.url)
    assert unfixed.exit_code == 1
    assert tally(unfixed.output)["rejected"] == len(lines)

    # The fix: the hangups' times are corrected by hand in `body` (`body_base64` still
    # holds the bytes as sent), and the team-less bodies are replayed for their team.
    letters = [json.loads(line) for line in lines]
    fixed = [letter | {"body": letter["body"].replace(' PBX"', '"')} for letter in letters]
    path = write(tmp_path / "fixed.jsonl", [json.dumps(letter) for letter in fixed])
    for_team1 = run(path, "--db", backend.url, "--team", "team1")
    assert tally(for_team1.output)["rejected"] == hangups  # team2's letters are not team1's
    as_kept = run(path, "--db", backend.url)
    assert tally(as_kept.output)["rejected"] == len(lost.events)  # they name no team
    assert tally(as_kept.output)["stored"] == hangups
    wanted = {lost.expected.diallogid, late.expected.diallogid}
    assert stored_cdrs(engine) == {
        key: cdr_ for key, cdr_ in expected_cdrs(calls).items() if key[1] in wanted
    }


def test_export_keeps_exact_bytes_and_filters(backend: Backend, engine: Engine) -> None:
    ingestor = Ingestor(engine)
    odd = b"sessionid=s\xff1&calltype=dialin"
    first = ingestor.dead_letter(DeadLetter("/astercc/t1/events", "t1", None, None, odd, False, {}))
    done = ingestor.dead_letter(DeadLetter("/astercc/t1/events", "t1", None, None, b"x", False, {}))
    ingestor.dead_letter(DeadLetter("/astercc/t2/events", "t2", None, None, b"y", True, {}))
    ingestor.resolve_dead_letter(done, "retried")

    def exported(*options: str) -> list[dict[str, Any]]:
        result = run("--db", backend.url, *options, command=rejected_export)
        return [json.loads(line) for line in result.output.splitlines()]

    assert [letter["id"] for letter in exported("--team", "t1")] == [first]
    assert len(exported("--all")) == 3
    assert len(exported()) == 2
    [letter] = exported("--team", "t1")
    assert letter["body"] == "sessionid=s\ufffd1&calltype=dialin"
    body = body_of(json.dumps(letter).encode(), None)
    assert body == Body(odd, None, "t1")


EVENT_LIKE_LETTER = b'{"reason": "x", "truncated": "no", "sessionid": "1"}'


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        (b"", None),
        (b"  \r\n", None),
        (b"# sessionid=1", None),
        (b'\xef\xbb\xbf{"a": "1"}\r\n', Body(b'{"a": "1"}', JSON_TYPE, "t")),
        (b'[{"a": "1"}]', Body(b'[{"a": "1"}]', JSON_TYPE, "t")),
        (b"a=1&b=2\n", Body(b"a=1&b=2", FORM_TYPE, "t")),
        # An event that merely has fields called reason and truncated is still an event.
        (EVENT_LIKE_LETTER, Body(EVENT_LIKE_LETTER, JSON_TYPE, "t")),
    ],
)
def test_a_line_is_the_push_body_it_looks_like(line: bytes, wanted: Body | None) -> None:
    assert body_of(line, "t") == wanted


def letter_line(**values: Any) -> bytes:
    letter = {"body": "a=1", "path": "/astercc/events", "reason": {}, "truncated": False}
    return json.dumps(letter | values).encode()


def test_a_dead_letter_line_brings_its_own_body_and_team() -> None:
    assert body_of(letter_line(orgidentity="t1"), None) == Body(b"a=1", None, "t1")
    assert body_of(letter_line(orgidentity=None), "t2") == Body(b"a=1", None, "t2")
    typed = letter_line(orgidentity="t1", content_type="text/plain; charset=utf-8")
    assert body_of(typed, "t1") == Body(b"a=1", "text/plain; charset=utf-8", "t1")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"orgidentity": "t1"}, "orgidentity"),
        ({"truncated": True}, "body"),
        ({"body_base64": "not base64!"}, "body_base64"),
        ({"body": 7}, "body"),
    ],
)
def test_a_dead_letter_line_that_cannot_be_replayed_is_refused(
    values: dict[str, Any], field: str
) -> None:
    refused = body_of(letter_line(**values), "t2")
    assert isinstance(refused, Rejection)
    assert field in refused.as_dict()


def test_stdin_and_the_pbx_time_zone(sqlite_url: str) -> None:
    event = {
        "sessionid": "s1",
        "calltype": "dialin",
        "source": "CALLER",
        "event": "ringing",
        "eventTime": "2026-11-20 16:00:00",
        "activenum": "13800138000",
    }
    options = ("--team", "t1", "--pbx-timezone", "Asia/Shanghai")
    result = run("-", "--db", sqlite_url, *options, stdin=(urlencode(event) + "\n").encode())
    assert result.exit_code == 0, result.output
    assert "<stdin>" not in result.output
    engine = make_engine(sqlite_url)
    [record] = stored_cdrs(engine).values()
    engine.dispose()
    assert (record.team, record.starttime) == ("t1", datetime(2026, 11, 20, 8, 0, tzinfo=UTC))


def test_bodies_over_the_push_limit_are_refused_and_long_lines_skipped(
    engine: Engine, calls: list[GeneratedCall]
) -> None:
    intake = Intake(Settings(max_body_bytes=1024), Ingestor(engine))
    events = calls[0].events
    padded = events[0] | {"note": "x" * 1000}
    lines = [json.dumps(padded), "y" * 9000, *(json.dumps(event) for event in events)]
    data = "\n".join(lines).encode()
    told: list[int] = []
    replayer = Replayer(intake, team=calls[0].team, keep_refused=True)
    summary = replayer.replay([("big", io.BytesIO(data))], told.append)
    assert sum(told) == len(data)
    assert (summary.lines, summary.rejected, summary.stored) == (len(events) + 2, 2, len(events))
    assert [str(refusal) for refusal in summary.refusals] == [
        "big:1: body: is larger than 1024 bytes",
        "big:2: line: is longer than 8192 bytes",
    ]
    with engine.connect() as connection:
        [letter] = connection.execute(select(dead_letter)).all()
    assert (letter.body, letter.truncated) == (lines[0].encode(), False)
