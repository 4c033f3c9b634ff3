"""No input, however malformed, yields a 5xx; and garbage never disturbs good calls.

Each kind of garbage is posted between the events of a valid call, on every backend;
the call's CDR must come out exactly as if the garbage had never been sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from cdrlog.service.settings import Settings
from cdrlog.store.tables import call_event, cdr
from cdrlog.web.app import create_app

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture
def lenient(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The app, answering 500 instead of raising, so a 5xx is seen as a status."""
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        yield client


def call_event_fields(sessionid: str, source: str, event: str, at: str) -> dict[str, str]:
    return {
        "sessionid": sessionid,
        "calltype": "dialout",
        "source": source,
        "event": event,
        "eventTime": at,
        "activenum": "13800138000",
        "agentno": "1001",
        "agentphone": "8001",
    }


CALL = (
    ("CALLEE", "ringing", "2024-03-05 09:00:05"),
    ("CALLEE", "answer", "2024-03-05 09:00:12"),
    ("CALLER", "hangup", "2024-03-05 09:01:40"),
)


def post_event(client: TestClient, team: str, fields: Mapping[str, str]) -> None:
    response = client.post(
        f"/astercc/{quote(team, safe='')}/events",
        content=urlencode(fields),
        headers={"content-type": FORM},
    )
    assert response.status_code == 200, response.text


def assert_call_stored(engine: Engine, team: str, sessionid: str) -> None:
    with engine.connect() as connection:
        row = connection.execute(
            select(cdr).where(cdr.c.orgidentity == team, cdr.c.diallogid == sessionid)
        ).one()
    assert (row.src, row.dst, row.agentno, row.disposition, row.status) == (
        "8001",
        "13800138000",
        "1001",
        "ANSWER",
        "closed",
    )
    assert (row.starttime, row.answertime, row.endtime) == (
        datetime(2024, 3, 5, 9, 0, 5, tzinfo=UTC),
        datetime(2024, 3, 5, 9, 0, 12, tzinfo=UTC),
        datetime(2024, 3, 5, 9, 1, 40, tzinfo=UTC),
    )
    assert (row.duration, row.billsec) == (95, 88)


@dataclass(frozen=True)
class Garbage:
    body: bytes
    content_type: str | None = FORM
    path: str = "/astercc/team1/events"


def _multipart(parts: bytes, boundary: str = "x") -> Garbage:
    return Garbage(parts, f"multipart/form-data; boundary={boundary}")


GARBAGE: dict[str, Garbage] = {
    "nul-team-url": Garbage(b"sessionid=1", path="/astercc/%00/events"),
    "padded-team-url": Garbage(b"sessionid=1", path="/astercc/%20t%20/events"),
    "invalid-utf8-form": Garbage(b"sessionid=\xff\xfe&event=\xc3&\xed\xa0\x80=1"),
    "invalid-utf8-json": Garbage(b'{"sessionid": "\xff\xfe"}', JSON),
    "binary": Garbage(bytes(range(256)) * 8, "application/octet-stream"),
    "binary-as-form": Garbage(bytes(range(255, -1, -1)) * 8),
    "huge-field-name": Garbage(b"n" * 400_000 + b"=1"),
    "huge-field-value": Garbage(b"sessionid=1&note=" + b"v" * 400_000),
    "nul-bytes-form": Garbage(b"sessionid=a%00b&eventTime=\x00&\x00=\x00"),
    "nul-bytes-json": Garbage(b'{"sessionid": "a\\u0000", "x\\u0000": "\\u0000"}', JSON),
    "deep-json-array": Garbage(b"[" * 100_000 + b"]" * 100_000, JSON),
    "deep-json-object": Garbage(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON),
    "deep-json-value": Garbage(b'{"sessionid": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", JSON),
    "json-number": Garbage(b"42", JSON),
    "json-string": Garbage(b'"sessionid=1"', JSON),
    "json-null": Garbage(b"null", JSON),
    "json-true": Garbage(b"true", JSON),
    "json-empty-array": Garbage(b"[]", JSON),
    "json-array-of-numbers": Garbage(b"[1,2]", JSON),
    "json-array-of-junk": Garbage(b'[[], {}, 1, "x", null, true, {"a": {"b": 1}}]', JSON),
    "json-list-dict-bool-values": Garbage(
        b'{"sessionid": [1], "calltype": {"a": 1}, "source": true, "event": false}', JSON
    ),
    "json-huge-int": Garbage(b'{"eventTime": ' + b"9" * 5_000 + b"}", JSON),
    "json-nan-infinity": Garbage(b'{"eventTime": NaN, "activenum": -Infinity}', JSON),
    "json-1e400": Garbage(b'{"eventTime": 1e400}', JSON),
    "json-duplicate-keys": Garbage(b'{"sessionid": "a", "sessionid": ["b"]}', JSON),
    "json-utf16": Garbage('[{"sessionid": "x"}]'.encode("utf-16"), JSON),
    "json-utf32-be": Garbage('{"sessionid": "x"}'.encode("utf-32-be"), JSON),
    "json-as-text-plain": Garbage(b'[{"sessionid": 1}, 2]', "text/plain"),
    "json-as-form": Garbage(b'{"sessionid": "1"}'),
    "form-as-json": Garbage(b"sessionid=1&event=ringing", JSON),
    "wrong-content-type": Garbage(b"sessionid=1", "image/png"),
    "garbage-content-type": Garbage(b"sessionid=1", ";;;=;\t"),
    "no-content-type": Garbage(b"\x00\x01sessionid", None),
    "empty-form": Garbage(b""),
    "empty-json": Garbage(b"", JSON),
    "empty-no-type": Garbage(b"", None),
    "only-separators": Garbage(b"&&&;;;==="),
    "10k-form-fields": Garbage("&".join(f"f{i}={i}" for i in range(10_000)).encode()),
    "10k-json-fields": Garbage(json.dumps({f"f{i}": str(i) for i in range(10_000)}).encode(), JSON),
    "percent-garbage": Garbage(b"sessionid=%zz%&%%%=%G1&%ff%fe=%ed%a0%80&a%=%"),
    "absurd-eventTime-text": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer&eventTime=tomorrow+at+noon"
    ),
    "absurd-eventTime-year-0": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer"
        b"&eventTime=0001-01-01T00:00:00%2B14:00"
    ),
    "absurd-eventTime-year-9999": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer"
        b"&eventTime=9999-12-31T23:59:59-14:00"
    ),
    "absurd-eventTime-epoch": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer&eventTime=999999999999.999"
    ),
    "absurd-eventTime-negative": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer&eventTime=-1"
    ),
    "absurd-eventTime-exponent": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer&eventTime=1e9"
    ),
    "absurd-eventTime-week-date": Garbage(
        b"sessionid=1&calltype=dialout&source=CALLEE&event=answer&eventTime=2024-W10-2"
    ),
    "long-sessionid-field": Garbage(b"sessionid=" + b"s" * 100_000),
    "long-team-field": Garbage(b"orgidentity=" + b"t" * 10_000, path="/astercc/events"),
    "long-team-url": Garbage(b"sessionid=1", path="/astercc/" + "t" * 5_000 + "/events"),
    "long-sessionid-emoji": Garbage(urlencode({"sessionid": "\U0001f600" * 129}).encode()),
    "nul-team-field": Garbage(b"orgidentity=%00&sessionid=1", path="/astercc/events"),
    "percent-garbage-team": Garbage(b"sessionid=1", path="/astercc/%zz%25%ff%ed%a0%80/events"),
    "slash-team": Garbage(b"sessionid=1", path="/astercc/a%2Fb/events"),
    "dot-dot-team": Garbage(b"sessionid=1", path="/astercc/../events"),
    "unknown-path": Garbage(b"sessionid=1", path="/astercc/team1/events/more"),
    "surrogate-key-escaped": Garbage(b'{"\\ud800": [1]}', JSON),
    "surrogate-key-raw": Garbage(b'{"\xed\xa0\x80\\u0000": "1"}', JSON),
    "surrogate-values": Garbage(b'{"sessionid": "\\ud800", "note": "\\udfff"}', JSON),
    "multipart-no-boundary": Garbage(b"--x\r\n", "multipart/form-data"),
    "multipart-empty-boundary": Garbage(b"--\r\n", "multipart/form-data; boundary="),
    "multipart-no-headers": _multipart(b"--x\r\nno headers\r\n--x--\r\n"),
    "multipart-no-name": _multipart(b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n"),
    "multipart-unterminated": _multipart(
        b'--x\r\nContent-Disposition: form-data; name="sessionid"\r\n\r\nabc'
    ),
    "multipart-bad-charset": Garbage(
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\xfe\r\n--x--\r\n',
        "multipart/form-data; boundary=x; charset=no-such-charset",
    ),
    "multipart-2000-fields": _multipart(
        b"".join(
            b'--x\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
            for i in range(2_000)
        )
        + b"--x--\r\n"
    ),
    "multipart-file": _multipart(
        b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\n--x--\r\n"
    ),
}


def post_garbage(client: TestClient, garbage: Garbage) -> int:
    headers = {} if garbage.content_type is None else {"content-type": garbage.content_type}
    status: int = client.post(garbage.path, content=garbage.body, headers=headers).status_code
    return status


def test_garbage_is_answered_below_500_and_spares_good_calls(
    lenient: TestClient, engine: Engine
) -> None:
    """Every kind of garbage in turn, each followed by the next event of some good call."""
    calls = range((len(GARBAGE) + len(CALL) - 1) // len(CALL))
    good = [call_event_fields(f"good-{n}", *leg) for n in calls for leg in CALL]
    statuses: dict[str, int] = {}
    for (name, garbage), fields in zip(GARBAGE.items(), good, strict=False):
        statuses[name] = post_garbage(lenient, garbage)
        post_event(lenient, "team1", fields)
    for fields in good[len(GARBAGE) :]:
        post_event(lenient, "team1", fields)

    assert {name: status for name, status in statuses.items() if status >= 500} == {}
    for number in calls:
        assert_call_stored(engine, "team1", f"good-{number}")


# --- text that must survive intact -------------------------------------------------------


def _post_call(client: TestClient, team: str, sessionid: str, **extra: str) -> None:
    for leg in CALL:
        post_event(client, team, call_event_fields(sessionid, *leg) | extra)


def test_four_byte_utf8_is_stored_exactly(client: TestClient, engine: Engine) -> None:
    team = "\u961f\U0001f600"
    sessionid = "\U0001f4de-\U0001d11e"
    values = {
        "activenum": "\U0001f600138",
        "agentno": "\U0001f9d1\u200d\U0001f4bb",
        "agentphone": "\U0001f3a78001",
    }

    for leg in CALL:
        post_event(
            client, team, call_event_fields(sessionid, *leg) | values | {"note": "\U0001f984"}
        )

    with engine.connect() as connection:
        row = connection.execute(select(cdr)).one()
        journal = connection.execute(select(call_event.c.fields)).scalars().all()
    assert (row.orgidentity, row.diallogid) == (team, sessionid)
    assert (row.src, row.dst, row.agentno) == (
        values["agentphone"],
        values["activenum"],
        values["agentno"],
    )
    assert {json.loads(fields)["note"] for fields in journal} == {"\U0001f984"}


def test_four_byte_utf8_at_full_column_width(client: TestClient, engine: Engine) -> None:
    team = "\U0001f600" * 64
    sessionid = "\U0001f4de" * 128

    _post_call(client, team, sessionid, activenum="\U0001f4f1" * 64, agentno="\U0001f9d1" * 64)

    with engine.connect() as connection:
        row = connection.execute(select(cdr)).one()
    assert (row.orgidentity, row.diallogid) == (team, sessionid)
    assert (row.dst, row.agentno) == ("\U0001f4f1" * 64, "\U0001f9d1" * 64)


@pytest.mark.parametrize("team", ["a b", "team one", "t-1_x.y", "caf\u00e9", "+"])
def test_team_names_with_spaces_and_punctuation(
    client: TestClient, engine: Engine, team: str
) -> None:
    _post_call(client, team, "s1")

    assert_call_stored(engine, team, "s1")


def test_team_with_a_slash_cannot_be_addressed(client: TestClient, engine: Engine) -> None:
    fields = call_event_fields("s1", *CALL[0])

    response = client.post(
        "/astercc/a%2Fb/events", content=urlencode(fields), headers={"content-type": FORM}
    )

    assert response.status_code == 404
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(call_event)).scalar_one() == 0


def test_a_team_never_writes_into_a_similar_teams_cdr(client: TestClient, engine: Engine) -> None:
    ringing, answer, _ = (call_event_fields("s1", *leg) for leg in CALL)
    post_event(client, "t", ringing)

    padded = client.post(
        "/astercc/t%20/events", content=urlencode(answer), headers={"content-type": FORM}
    )

    assert padded.status_code == 400
    assert "team" in padded.json()["errors"]

    with engine.connect() as connection:
        row = connection.execute(
            select(cdr).where(cdr.c.orgidentity == "t", cdr.c.diallogid == "s1")
        ).one()
    assert (row.orgidentity, row.disposition, row.answertime) == ("t", "NOANSWER", None)


# --- random bodies -----------------------------------------------------------------------

FIELD_NAMES = (
    "sessionid",
    "calltype",
    "source",
    "event",
    "eventTime",
    "activenum",
    "agentno",
    "agentphone",
    "orgidentity",
    "hangupcause",
)
PLAUSIBLE = (
    "",
    "dialout",
    "DIALIN",
    "fax",
    "CALLER",
    "callee",
    "ringing",
    "Answer",
    "hangup",
    "login",
    "logout",
    "link",
    "team1",
    "2024-03-05 09:00:05",
    "2024-03-05T09:00:05+08:00",
    "1709629205",
    "1709629205.123456789",
    "0",
    "17",
    "busy",
    "8001",
)
names = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=20))
values = st.one_of(st.sampled_from(PLAUSIBLE), st.text(max_size=40), st.integers().map(str))
pairs = st.lists(st.tuples(names, values), max_size=14)
form_bodies = st.one_of(
    pairs.map(lambda items: urlencode(items).encode()),
    pairs.map(lambda items: "&".join(f"{k}={v}" for k, v in items).encode()),
    st.binary(max_size=300),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(PLAUSIBLE),
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=6),
    max_leaves=20,
)
event_like = st.dictionaries(names, st.one_of(values, scalars), max_size=12)
json_documents = st.one_of(documents, event_like, st.lists(event_like, max_size=4))
paths = st.one_of(
    st.sampled_from(["/astercc/team1/events", "/astercc/events"]),
    st.text(min_size=1, max_size=80).map(lambda team: f"/astercc/{quote(team, safe='')}/events"),
)
RANDOM = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@RANDOM
@given(
    body=form_bodies,
    content_type=st.sampled_from([FORM, None, "text/plain", f"{FORM}; charset=latin-1"]),
    path=paths,
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_random_form_bodies_get_no_5xx(
    lenient: TestClient, body: bytes, content_type: str | None, path: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}

    response = lenient.post(path, content=body, headers=headers)

    assert response.status_code < 500, response.text


@RANDOM
@given(document=json_documents, ascii_only=st.booleans(), path=paths)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_random_json_documents_get_no_5xx(
    lenient: TestClient, document: Any, ascii_only: bool, path: str
) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode()

    response = lenient.post(path, content=body, headers={"content-type": JSON})

    assert response.status_code < 500, response.text
