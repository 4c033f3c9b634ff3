"""POST /astercc/{team}/events and /astercc/events over HTTP, on every backend.

The seed's outbound call is the running example: the customer's leg (CALLEE) rings,
is answered, hangs up. Its expected CDR is written out by hand from the seed's table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table, func, select

from cdrlog.service.settings import Settings
from cdrlog.store.tables import agent, call_event, cdr, dead_letter
from cdrlog.web.app import create_app

TEAM = "team1"
SESSION = "1709629205.118"
FORM = "application/x-www-form-urlencoded"

Fields = dict[str, str]


def seed_event(source: str, event: str, at: str, **extra: str) -> Fields:
    """One event of the seed's outbound call, as asterCC posts it."""
    return {
        "orgidentity": TEAM,
        "sessionid": SESSION,
        "calltype": "dialout",
        "source": source,
        "event": event,
        "eventTime": at,
        "agentno": "1001",
        "agentphone": "8001",
        **extra,
    }


SEED_CALL: tuple[Fields, ...] = (
    seed_event("CALLEE", "ringing", "2024-03-05 09:00:05", activenum="13800138000"),
    seed_event("CALLEE", "answer", "2024-03-05 09:00:12"),
    seed_event("CALLEE", "hangup", "2024-03-05 09:01:40", hangupcause="16"),
)

SEED_CDR: dict[str, Any] = {
    "orgidentity": TEAM,
    "diallogid": SESSION,
    "calltype": "dialout",
    "target": "DialOut",
    "src": "8001",
    "dst": "13800138000",
    "agentno": "1001",
    "starttime": datetime(2024, 3, 5, 9, 0, 5, tzinfo=UTC),
    "answertime": datetime(2024, 3, 5, 9, 0, 12, tzinfo=UTC),
    "endtime": datetime(2024, 3, 5, 9, 1, 40, tzinfo=UTC),
    "duration": 95,
    "billsec": 88,
    "disposition": "ANSWER",
    "status": "closed",
}


def post_form(client: TestClient, fields: Mapping[str, str], team: str = TEAM) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/astercc/{team}/events", content=urlencode(fields), headers=_form()
    )
    return response


def post_json(client: TestClient, document: object, team: str = TEAM) -> httpx.Response:
    response: httpx.Response = client.post(f"/astercc/{team}/events", json=document)
    return response


def _form() -> dict[str, str]:
    return {"content-type": FORM}


def rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(select(table).order_by(*table.primary_key.columns))
        return [dict(row._mapping) for row in result]


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def only_cdr(engine: Engine) -> dict[str, Any]:
    found = rows(engine, cdr)
    assert len(found) == 1, found
    return found[0]


def cdr_fields(row: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in expected}


def multipart(fields: Sequence[tuple[str, str]], boundary: str = "cdrlog-7d3") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def multipart_type(boundary: str = "cdrlog-7d3") -> dict[str, str]:
    return {"content-type": f"multipart/form-data; boundary={boundary}"}


def assert_dead_letter(
    engine: Engine, letter_id: int, body: bytes, errors: Mapping[str, str]
) -> None:
    letters = {letter["id"]: letter for letter in rows(engine, dead_letter)}
    letter = letters[letter_id]
    assert bytes(letter["body"]) == body
    assert json.loads(letter["reason"]) == errors
    assert letter["truncated"] is False


# --- the seed's call ---------------------------------------------------------------------


def test_seed_call_makes_one_cdr_with_every_seed_field(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        response = post_form(client, fields)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "stored"}

    row = only_cdr(engine)
    assert cdr_fields(row, SEED_CDR) == SEED_CDR
    assert row["created_at"] <= row["updated_at"]
    assert count(engine, call_event) == 3


def test_seed_call_sent_five_times_in_reverse_order(client: TestClient, engine: Engine) -> None:
    statuses = [
        post_form(client, fields).json()["status"]
        for fields in reversed(SEED_CALL)
        for _ in range(5)
    ]

    assert statuses == (["stored"] + ["duplicate"] * 4) * 3
    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR
    assert count(engine, call_event) == 3


def test_exact_resend_is_a_duplicate_and_adds_no_journal_row(
    client: TestClient, engine: Engine
) -> None:
    ringing = SEED_CALL[0]
    assert post_form(client, ringing).json() == {"status": "stored"}
    journal = rows(engine, call_event)

    again = post_form(client, dict(reversed(list(ringing.items()))))

    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert rows(engine, call_event) == journal


def test_generic_url_takes_the_team_from_orgidentity(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        response = client.post("/astercc/events", content=urlencode(fields), headers=_form())
        assert response.json() == {"status": "stored"}

    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_url_team_fills_a_missing_orgidentity(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        without_team = {k: v for k, v in fields.items() if k != "orgidentity"}
        assert post_form(client, without_team).json() == {"status": "stored"}

    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_team_mismatch_is_refused_and_stores_nothing(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        response = post_form(client, fields, team="team2")
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"orgidentity"}

    assert count(engine, cdr) == 0
    assert count(engine, call_event) == 0
    assert count(engine, dead_letter) == 3


# --- refusals name each bad field ---------------------------------------------------------


def _without(fields: Fields, *names: str) -> Fields:
    return {k: v for k, v in fields.items() if k not in names}


RINGING = SEED_CALL[0]


def test_an_empty_body_is_refused_kept_and_listed(client: TestClient) -> None:
    refused = client.post(f"/astercc/{TEAM}/events", content=b"", headers=_form())
    assert refused.status_code == 400
    letter_id = refused.json()["dead_letter_id"]
    listed = client.get("/api/v1/rejected").json()["rejected"]
    assert [(letter["id"], letter["body"]) for letter in listed] == [(letter_id, "")]
    assert client.get(f"/api/v1/rejected/{letter_id}").json()["body"] == ""


def test_a_retry_of_a_body_refused_whole_stores_nothing(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = urlencode(_without(RINGING, "event")).encode()
    letter_id = client.post(f"/astercc/{TEAM}/events", content=body, headers=_form()).json()[
        "dead_letter_id"
    ]
    retried = client.post(f"/api/v1/rejected/{letter_id}/retry")
    assert retried.status_code == 200
    assert retried.json() | {"errors": {}} == {
        "id": letter_id,
        "status": "rejected",
        "stored": 0,
        "duplicate": 0,
        "errors": {},
    }
    assert set(retried.json()["errors"]["0"]) == {"event"}
    assert "failed" not in caplog.text  # nothing to store is not a failed transaction


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        pytest.param(_without(RINGING, "sessionid"), {"sessionid"}, id="missing-sessionid"),
        pytest.param(RINGING | {"sessionid": "   "}, {"sessionid"}, id="blank-sessionid"),
        pytest.param(RINGING | {"eventTime": "yesterday"}, {"eventTime"}, id="bad-eventTime"),
        pytest.param(
            RINGING | {"eventTime": "2024-13-45 25:61:00"}, {"eventTime"}, id="impossible-date"
        ),
        pytest.param(_without(RINGING, "eventTime"), {"eventTime"}, id="missing-eventTime"),
        pytest.param(_without(RINGING, "calltype"), {"calltype"}, id="missing-calltype"),
        pytest.param(_without(RINGING, "source"), {"source"}, id="missing-source"),
        pytest.param(_without(RINGING, "activenum"), {"activenum"}, id="ringing-no-activenum"),
        pytest.param(RINGING | {"sessionid": "s" * 129}, {"sessionid"}, id="long-sessionid"),
        pytest.param(
            _without(RINGING, "sessionid", "source") | {"eventTime": "soon"},
            {"sessionid", "source", "eventTime"},
            id="three-at-once",
        ),
        pytest.param(
            {"event": "paused", "eventTime": "2024-03-05 08:00:00"},
            {"agentno"},
            id="agent-event-without-agentno",
        ),
        pytest.param(_without(RINGING, "event"), {"event"}, id="missing-event"),
    ],
)
def test_refusal_names_each_bad_field_and_keeps_a_dead_letter(
    client: TestClient, engine: Engine, fields: Fields, bad: set[str]
) -> None:
    body = urlencode(fields).encode()

    response = client.post(f"/astercc/{TEAM}/events", content=body, headers=_form())

    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "rejected"
    assert set(answer["errors"]) == bad
    assert all(isinstance(message, str) and message for message in answer["errors"].values())
    assert_dead_letter(engine, answer["dead_letter_id"], body, answer["errors"])
    assert count(engine, call_event) == 0


# The event asterCC's interface manual prints, byte for byte: raw spaces and `/`, `;`
# unencoded, a trailing `&`, no orgidentity (the per-team URL names the team).
MANUAL_EXAMPLE = (
    b"calleridnum=041139735857&didnumber=8008008&activenum=041139735855&source=AGENT"
    b"&event=ringing&uniqueid=78969&sessionid=efeb7b374a3408b0d0954f30a1504d83"
    b"&eventTime=2010-01-01 08:21:58&AgentTeamId=20&modeltype=Campaign&model_id=10"
    b"&AgentGroupId=100&calltype=dialout&channel=Local/015967121144@hosted-dialout-408a;1"
    b"&from=dialout&"
)


def test_the_manuals_printed_example_is_stored_byte_for_byte(
    client: TestClient, engine: Engine
) -> None:
    response = client.post(f"/astercc/{TEAM}/events", content=MANUAL_EXAMPLE, headers=_form())

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored"}
    stored = rows(engine, call_event)[0]
    assert (stored["source"], stored["event"], stored["uniqueid"], stored["agent_group"]) == (
        "AGENT",
        "ringing",
        "78969",
        "100",
    )
    fields = json.loads(stored["fields"])
    assert fields["eventTime"] == "2010-01-01 08:21:58"
    assert fields["channel"] == "Local/015967121144@hosted-dialout-408a;1"
    assert count(engine, dead_letter) == 0


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"source": "QUEUE"}, id="unknown-source"),
        pytest.param({"event": "dtmf", "activenum": ""}, id="unknown-call-event"),
        pytest.param({"calltype": "internal"}, id="unknown-calltype"),
        pytest.param({"calltype": "", "from": "dialout"}, id="from-for-calltype"),
        pytest.param({"X-Anything": "1", "userdata": "a=b"}, id="extra-fields"),
    ],
)
def test_what_asterCC_may_send_is_never_refused(
    client: TestClient, engine: Engine, fields: Fields
) -> None:
    body = urlencode(RINGING | fields).encode()

    response = client.post(f"/astercc/{TEAM}/events", content=body, headers=_form())

    assert response.status_code == 200, response.text
    assert count(engine, call_event) == 1
    assert count(engine, dead_letter) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"event=paused&agentno=1001&eventTime=2024-03-05 08:00:00&AgentGroupId=100&",
        b"event=logoff&agentno=1001&eventTime=2024-03-05 18:00:00&",
        b"event=workwayall&agentno=1001&eventTime=2024-03-05 08:00:01&",
        b"event=queuefull&eventTime=2024-03-05 08:00:01&",
    ],
)
def test_agent_and_unknown_events_without_a_call_are_stored(
    client: TestClient, engine: Engine, body: bytes
) -> None:
    response = client.post(f"/astercc/{TEAM}/events", content=body, headers=_form())

    assert response.status_code == 200, response.text
    assert rows(engine, call_event)[0]["sessionid"] is None


def test_dead_letter_records_where_a_refusal_came_from(client: TestClient, engine: Engine) -> None:
    body = b"sessionid=&event=ringing"

    response = client.post("/astercc/team9/events", content=body, headers=_form())

    letter = rows(engine, dead_letter)[0]
    assert letter["id"] == response.json()["dead_letter_id"]
    assert letter["orgidentity"] == "team9"
    assert letter["path"] == "/astercc/team9/events"
    assert letter["content_type"] == FORM
    assert isinstance(letter["received_at"], datetime)
    assert letter["received_at"].utcoffset() is not None


def test_undecodable_body_is_refused_with_its_original_bytes(
    client: TestClient, engine: Engine
) -> None:
    body = b'{"sessionid": "1", "event": '

    response = client.post(
        f"/astercc/{TEAM}/events", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    answer = response.json()
    assert set(answer["errors"]) == {"body"}
    assert_dead_letter(engine, answer["dead_letter_id"], body, answer["errors"])


# --- JSON --------------------------------------------------------------------------------


def test_json_object_per_event(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        response = post_json(client, fields)
        assert response.status_code == 200
        assert response.json() == {"status": "stored"}

    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_json_numbers_for_event_time(client: TestClient, engine: Engine) -> None:
    ringing, answer, hangup = (dict[str, object](fields) for fields in SEED_CALL)
    ringing["eventTime"] = 1709629205
    answer["eventTime"] = 1709629212.5
    hangup["eventTime"] = "1709629300"

    for document in (ringing, answer, hangup):
        assert post_json(client, document).json() == {"status": "stored"}

    row = only_cdr(engine)
    assert row["starttime"] == datetime(2024, 3, 5, 9, 0, 5, tzinfo=UTC)
    assert row["answertime"] == datetime(2024, 3, 5, 9, 0, 12, 500000, tzinfo=UTC)
    assert row["endtime"] == datetime(2024, 3, 5, 9, 1, 40, tzinfo=UTC)
    assert (row["duration"], row["billsec"]) == (95, 88)


def test_json_batch_answers_with_counts(client: TestClient, engine: Engine) -> None:
    first = post_json(client, list(SEED_CALL))
    again = post_json(client, [SEED_CALL[2], SEED_CALL[0]])

    assert first.status_code == 200
    assert first.json() == {
        "status": "stored",
        "stored": 3,
        "duplicate": 0,
        "spooled": 0,
        "rejected": [],
    }
    assert again.status_code == 200
    assert again.json() == {
        "status": "stored",
        "stored": 0,
        "duplicate": 2,
        "spooled": 0,
        "rejected": [],
    }
    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_batch_with_one_bad_item_stores_the_good_ones(client: TestClient, engine: Engine) -> None:
    bad = _without(SEED_CALL[1], "sessionid") | {"eventTime": "later"}
    batch = [SEED_CALL[0], bad, SEED_CALL[1], SEED_CALL[2]]

    response = post_json(client, batch)

    assert response.status_code == 400
    answer = response.json()
    assert (answer["status"], answer["stored"], answer["duplicate"]) == ("rejected", 3, 0)
    [refused] = answer["rejected"]
    assert refused["index"] == 1
    assert set(refused["errors"]) == {"sessionid", "eventTime"}
    letter = {row["id"]: row for row in rows(engine, dead_letter)}[refused["dead_letter_id"]]
    assert json.loads(bytes(letter["body"])) == bad
    assert json.loads(letter["reason"]) == refused["errors"]
    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_batch_item_with_a_wrongly_typed_value_keeps_its_content(
    client: TestClient, engine: Engine
) -> None:
    item = SEED_CALL[0] | {"agentno": True}

    response = post_json(client, [item, SEED_CALL[1]])

    letter_id = response.json()["rejected"][0]["dead_letter_id"]
    letter = {row["id"]: row for row in rows(engine, dead_letter)}[letter_id]
    assert json.loads(bytes(letter["body"])) == item


def test_json_batch_after_a_byte_order_mark_stores_every_item(
    client: TestClient, engine: Engine
) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(list(SEED_CALL)).encode()

    response = client.post(
        f"/astercc/{TEAM}/events", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200
    assert count(engine, call_event) == 3


# --- multipart ---------------------------------------------------------------------------


def test_multipart_form_data(client: TestClient, engine: Engine) -> None:
    for fields in SEED_CALL:
        body = multipart(list(fields.items()))
        response = client.post(f"/astercc/{TEAM}/events", content=body, headers=multipart_type())
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "stored"}

    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR


def test_multipart_file_part_is_refused_by_name(client: TestClient, engine: Engine) -> None:
    boundary = "b0undary"
    body = (
        multipart(list(RINGING.items()), boundary)[: -len(f"--{boundary}--\r\n")]
        + f'--{boundary}\r\nContent-Disposition: form-data; name="recording"; '
        f'filename="call.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n'
        f"--{boundary}--\r\n".encode()
    )

    response = client.post(
        f"/astercc/{TEAM}/events", content=body, headers=multipart_type(boundary)
    )

    assert response.status_code == 400
    answer = response.json()
    assert set(answer["errors"]) == {"recording"}
    assert_dead_letter(engine, answer["dead_letter_id"], body, answer["errors"])
    assert count(engine, call_event) == 0


def test_malformed_multipart_is_dead_lettered(client: TestClient, engine: Engine) -> None:
    body = b"--x\r\nno headers here\r\n--x--\r\n"

    response = client.post(f"/astercc/{TEAM}/events", content=body, headers=multipart_type("x"))

    assert response.status_code == 400
    assert_dead_letter(engine, response.json()["dead_letter_id"], body, response.json()["errors"])


# --- size limit --------------------------------------------------------------------------


@pytest.fixture
def small_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    small = Settings(database_url=settings.database_url, max_body_bytes=2048)
    with TestClient(create_app(small, engine)) as test_client:
        yield test_client


def test_body_at_the_limit_is_accepted(small_client: TestClient, engine: Engine) -> None:
    body = urlencode(RINGING | {"padding": ""}).encode()
    body += b"x" * (2048 - len(body))

    response = small_client.post(f"/astercc/{TEAM}/events", content=body, headers=_form())

    assert response.status_code == 200
    assert count(engine, cdr) == 1


def test_body_over_the_limit_is_413_and_kept_whole(
    small_client: TestClient, engine: Engine
) -> None:
    body = urlencode(RINGING | {"padding": "x" * 4000}).encode()

    response = small_client.post(f"/astercc/{TEAM}/events", content=body, headers=_form())

    assert response.status_code == 413
    assert response.json()["limit_bytes"] == 2048
    [letter] = rows(engine, dead_letter)
    assert (bytes(letter["body"]), letter["truncated"]) == (body, False)
    assert set(json.loads(letter["reason"])) == {"body"}
    assert count(engine, call_event) == 0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_huge_body_is_413_with_a_truncated_dead_letter(
    small_client: TestClient, engine: Engine, declared: bool
) -> None:
    body = urlencode(RINGING | {"padding": "x" * 300_000}).encode()
    chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))

    response = small_client.post(
        f"/astercc/{TEAM}/events", content=body if declared else chunks, headers=_form()
    )

    assert response.status_code == 413
    [letter] = rows(engine, dead_letter)
    kept = bytes(letter["body"])
    assert letter["truncated"] is True
    assert 2048 < len(kept) < len(body)
    assert body.startswith(kept)
    assert count(engine, call_event) == 0


# --- agent registry ----------------------------------------------------------------------


def login(agentno: str, phone: str, at: str, event: str = "login") -> Fields:
    return {"event": event, "agentno": agentno, "agentphone": phone, "eventTime": at}


def test_login_fills_the_agent_registry(client: TestClient, engine: Engine) -> None:
    response = post_form(client, login("1001", "8001", "2024-03-05 08:00:00"))

    assert response.json() == {"status": "stored"}
    [registered] = rows(engine, agent)
    assert registered["orgidentity"] == TEAM
    assert (registered["agentno"], registered["phone"], registered["logged_in"]) == (
        "1001",
        "8001",
        True,
    )
    assert registered["event_time"] == datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
    assert count(engine, cdr) == 0


def test_logout_marks_the_agent_logged_out(client: TestClient, engine: Engine) -> None:
    post_form(client, login("1001", "8001", "2024-03-05 08:00:00"))

    logout = {"event": "logout", "agentno": "1001", "eventTime": "2024-03-05 18:00:00"}
    assert post_form(client, logout).json() == {"status": "stored"}

    [registered] = rows(engine, agent)
    assert (registered["phone"], registered["logged_in"]) == ("8001", False)


def test_outbound_call_without_agentphone_takes_src_from_the_registry(
    client: TestClient, engine: Engine
) -> None:
    post_form(client, login("1001", "8123", "2024-03-05 08:00:00"))

    for fields in SEED_CALL:
        assert post_form(client, _without(fields, "agentphone")).json() == {"status": "stored"}

    assert cdr_fields(only_cdr(engine), SEED_CDR) == SEED_CDR | {"src": "8123"}


def test_registry_is_per_team(client: TestClient, engine: Engine) -> None:
    post_form(client, login("1001", "8999", "2024-03-05 08:00:00"), team="other-team")

    for fields in SEED_CALL:
        post_form(client, _without(fields, "agentphone"))

    assert only_cdr(engine)["src"] is None


# --- health ------------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "up", "spool_depth": 0}


def test_readyz_is_degraded_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    # Still 200: events are accepted all the same, into the spool.
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'cdrlog.db'}"
    settings = Settings(database_url=url, spool_dir=tmp_path / "spool")

    with TestClient(create_app(settings)) as unready:
        response = unready.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "database": "unreachable", "spool_depth": 0}
