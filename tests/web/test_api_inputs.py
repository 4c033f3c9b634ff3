"""Any value of any parameter of the read API is answered below 500; an invalid one gets
a 4xx naming the parameter, without the value repeated back.

The routes come from the app's own OpenAPI document, so a new endpoint or parameter is
covered as soon as it exists. Values: text, bytes (percent-encoded), JSON (deep,
huge numbers, booleans, floats), base64 of JSON, and cursors forged field by field.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.report import EARLIEST_ASKED, LATEST_ASKED, MAX_CURSOR, MAX_ID, Cursor, Sort
from cdrlog.service.settings import zone_named

# Per parameter: about 50 parameters, so some 1,000 requests in all.
EXAMPLES = 20
PREFIX = "/api/v1/"
# Either side of each end of the window, and the ends of the calendar.
TICK = timedelta(microseconds=1)
EDGES = [
    EARLIEST_ASKED - TICK,
    EARLIEST_ASKED,
    LATEST_ASKED - TICK,
    LATEST_ASKED,
    datetime.min.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC),
]


@dataclass(frozen=True)
class Parameter:
    route: str
    name: str
    where: str
    required: bool
    schema: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.route} {self.name}"


def _resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The parameter's own schema: a `$ref` followed, an optional's null dropped."""
    if "$ref" in schema:
        return _resolved(
            document["components"]["schemas"][schema["$ref"].rsplit("/")[-1]], document
        )
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return _resolved(options[0], document) if len(options) == 1 else schema


def read_parameters(document: dict[str, Any]) -> list[Parameter]:
    return [
        Parameter(
            path,
            spec["name"],
            spec["in"],
            spec.get("required", False),
            _resolved(spec["schema"], document),
        )
        for path, item in document["paths"].items()
        if path.startswith(PREFIX) and "get" in item
        for spec in item["get"].get("parameters", [])
    ]


def _fine_value(parameter: Parameter, ids: dict[str, str]) -> str:
    """A value the parameter accepts, for the ones not under test."""
    schema = parameter.schema
    if "enum" in schema:
        return str(schema["enum"][0])
    if parameter.where == "path":
        return ids[parameter.route]
    return {"integer": "1", "boolean": "true"}.get(schema.get("type", ""), "x")


def _request(
    parameter: Parameter, encoded: str, others: list[Parameter], ids: dict[str, str]
) -> str:
    """The URL with `encoded` (already percent-encoded) as the parameter's value, and
    fine values for the other required parameters of its route."""
    path, query = parameter.route, []
    for other in [*others, parameter]:
        value = encoded if other is parameter else quote(_fine_value(other, ids), safe="")
        if other.where == "path":
            path = path.replace("{" + other.name + "}", value)
        else:
            query.append(f"{other.name}={value}")
    return path + ("?" + "&".join(query) if query else "")


def _b64(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60)
)
moments = st.one_of(
    st.datetimes(timezones=st.none() | st.just(UTC) | offsets),
    st.sampled_from(EDGES),
).map(datetime.isoformat)
numbers = st.one_of(
    st.integers(-(2**80), 2**80),
    st.sampled_from([0, 1, -1, MAX_ID, MAX_ID + 1, 2**64, -(2**63) - 1]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
deep_nesting = st.integers(1, 5000).map(lambda depth: "[" * depth + "]" * depth)
# Cursors right in shape, each field mostly fine, now and then wrong: the review's
# forgeries among them (true as an id, ids past 64 bits, years 1 and 9999).
fine_times = st.datetimes(EARLIEST_ASKED.replace(tzinfo=None), datetime(2999, 12, 31))
fine_ids = st.integers(0, MAX_ID)
wrong_ids = st.one_of(numbers, st.booleans(), st.floats(), json_values)
cursor_fields = st.tuples(
    fine_times.map(lambda moment: moment.replace(tzinfo=UTC).isoformat()) | moments | json_values,
    fine_ids | wrong_ids,
    fine_ids | wrong_ids,
    fine_ids | wrong_ids,
    st.sampled_from([*Sort, "NEWEST", "", "sideways"]) | json_values,
).map(list)
texts = st.one_of(
    st.text(max_size=40),
    st.text(min_size=200, max_size=600),
    numbers.map(str),
    moments,
    st.sampled_from(["", " ", "true", "false", "null", "NaN", "1e309", "0x10", "Asia/Shanghai"]),
    st.sampled_from(["America", "Etc", "../../etc/passwd", "/etc/localtime", "UTC\n", "a" * 300]),
    json_values.map(json.dumps),
    deep_nesting,
    json_values.map(_b64),
    cursor_fields.map(_b64),
    deep_nesting.map(lambda text: _b64(json.loads(text)) if len(text) < 1800 else text),
)
# (as sent, percent-encoded; as the server decodes it)
values = st.one_of(
    texts.map(lambda text: (quote(text, safe=""), text)),
    st.binary(max_size=60).map(lambda raw: (quote_from_bytes(raw, safe=""), None)),
).map(lambda pair: (pair[0], pair[1] if pair[1] is not None else unquote(pair[0])))


def _invalid(parameter: Parameter, text: str) -> bool:
    """True when `text` is certainly not a value `parameter` accepts (False: it may be)."""
    schema = parameter.schema
    if text == "" and not parameter.required:
        return False  # as if not given, for some
    if "enum" in schema:
        return text not in [str(value) for value in schema["enum"]]
    if len(text) > schema.get("maxLength", len(text)):
        return True
    if schema.get("type") == "integer":
        low, high = schema.get("minimum", -(2**63)), schema.get("maximum", MAX_ID)
        plain = re.fullmatch(r"-?\d+", text)
        return not re.search(r"\d", text) or (plain is not None and not low <= int(text) <= high)
    if parameter.name == "cursor":
        return not _fine_cursor(text)
    if parameter.name == "tz":
        return _refused(zone_named, text)
    if schema.get("format") == "date-time":
        return _outside_window(text)
    return False


def _refused(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return True
    return False


def _fine_cursor(text: str) -> bool:
    """What `Cursor.encode` writes, said again independently of `Cursor.decode`."""
    try:
        document = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError):
        return False
    if not isinstance(document, list) or len(document) != 5:
        return False
    start, *counts, sort = document
    fine_counts = all(type(n) is int and 0 <= n <= MAX_ID for n in counts)
    if not (fine_counts and isinstance(start, str) and sort in list(Sort)):
        return False
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        return False
    return moment.tzinfo is not None and not _outside_window(start)


def _outside_window(text: str) -> bool:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False  # pydantic may still read it some other way
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        return not EARLIEST_ASKED <= aware.astimezone(UTC) < LATEST_ASKED
    except OverflowError:
        return True


def _seeded(client: TestClient) -> dict[str, str]:
    """A call, its CDR and a dead letter, so the ids in paths lead somewhere."""
    call = {"orgidentity": "t1", "sessionid": "s1", "calltype": "dialout", "source": "CALLEE"}
    events = [
        call | {"event": "ringing", "eventTime": "2026-01-05 09:00:00", "activenum": "555"},
        call | {"event": "hangup", "eventTime": "2026-01-05 09:00:30", "hangupcause": "16"},
    ]
    assert client.post("/astercc/t1/events", json=events).status_code == 200
    assert client.post("/astercc/t1/events", json={"event": "ringing"}).status_code == 400
    cdr_id = client.get("/api/v1/cdrs").json()["cdrs"][0]["id"]
    letter_id = client.get("/api/v1/rejected").json()["rejected"][0]["id"]
    return {"/api/v1/cdrs/{cdr_id}": str(cdr_id), "/api/v1/rejected/{letter_id}": str(letter_id)}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_no_value_of_any_read_parameter_is_a_server_error(client: TestClient) -> None:
    ids = _seeded(client)
    parameters = read_parameters(client.app.openapi())  # type: ignore[attr-defined]
    labels = {parameter.label for parameter in parameters}
    assert {
        "/api/v1/cdrs cursor",
        "/api/v1/cdrs/{cdr_id} cdr_id",
        "/api/v1/events before",
    } <= labels
    for parameter in parameters:
        others = [
            p for p in parameters if p.route == parameter.route and p.required and p != parameter
        ]
        _throw_values_at(client, parameter, others, ids)


def _throw_values_at(
    client: TestClient, parameter: Parameter, others: list[Parameter], ids: dict[str, str]
) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(value=values)
    def throw(value: tuple[str, str]) -> None:
        encoded, decoded = value
        url = _request(parameter, encoded, others, ids)
        answer = client.get(url)
        shown = (parameter.label, url, answer.status_code, answer.text[:300])
        assert answer.status_code < 500, shown
        if parameter.where == "path":
            return  # a value with `/` in it leads elsewhere; any 4xx is right
        if _invalid(parameter, decoded):
            assert 400 <= answer.status_code < 500, shown
        if answer.status_code in (400, 422):
            assert parameter.name in answer.text, shown
            assert len(decoded) < 40 or decoded not in answer.text, shown

    throw()


FORGED = {
    "true as an id": ["2026-01-05T09:00:00+00:00", True, 5, 5, "newest"],
    "an id past 64 bits": ["2026-01-05T09:00:00+00:00", 2**63, 5, 5, "newest"],
    "a negative ceiling": ["2026-01-05T09:00:00+00:00", 1, -1, 5, "newest"],
    "a float total": ["2026-01-05T09:00:00+00:00", 1, 5, 5.0, "newest"],
    "year 1": ["0001-01-01T00:00:00+00:00", 1, 5, 5, "newest"],
    "year 1 east of UTC": ["0001-01-01T00:00:00+14:00", 1, 5, 5, "newest"],
    "year 9999 west of UTC": ["9999-12-31T23:59:59-14:00", 1, 5, 5, "newest"],
    "no offset": ["2026-01-05T09:00:00", 1, 5, 5, "newest"],
    "an unknown sort": ["2026-01-05T09:00:00+00:00", 1, 5, 5, "sideways"],
    "four fields": ["2026-01-05T09:00:00+00:00", 1, 5, 5],
    "six fields": ["2026-01-05T09:00:00+00:00", 1, 5, 5, "newest", 1],
    "an object": {"starttime": "2026-01-05T09:00:00+00:00", "id": 1},
    "a number": 7,
    "a time as a number": [1767600000, 1, 5, 5, "newest"],
}


@pytest.mark.parametrize("document", list(FORGED.values()), ids=list(FORGED))
def test_a_forged_cursor_is_a_value_error(document: Any) -> None:
    with pytest.raises(ValueError, match="not a cursor of this service"):
        Cursor.decode(_b64(document))


@pytest.mark.parametrize("depth", [100, 3000, 100_000])
def test_a_deeply_nested_cursor_is_a_value_error(depth: int) -> None:
    token = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode()
    with pytest.raises(ValueError, match="not a cursor of this service"):
        Cursor.decode(token)


def test_a_cursor_longer_than_any_this_service_writes_is_not_decoded() -> None:
    longest = Cursor(LATEST_ASKED - TICK, MAX_ID, MAX_ID, MAX_ID, Sort.NEWEST).encode()
    padded = _b64([LATEST_ASKED.isoformat(), 1, 1, 1, "newest", " " * MAX_CURSOR])

    assert len(longest) < MAX_CURSOR // 2
    with pytest.raises(ValueError, match=f"longer than {MAX_CURSOR}"):
        Cursor.decode(padded)


def test_the_edges_of_the_window_are_cursor_times() -> None:
    latest = LATEST_ASKED - timedelta(microseconds=1)
    for moment in (EARLIEST_ASKED, latest):
        cursor = Cursor(moment, 1, 1, 1, Sort.OLDEST)
        assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_422_names_the_parameter_and_never_repeats_the_value(client: TestClient) -> None:
    huge = "9" * 5000
    answer = client.get("/api/v1/events", params={"limit": huge, "before": "x" * 5000})
    body = client.post("/api/v1/session", json={"token": 12345, "x" * 10_000: "y" * 10_000})

    assert answer.status_code == 422
    assert {tuple(p["loc"]) for p in answer.json()["detail"]} == {
        ("query", "limit"),
        ("query", "before"),
    }
    assert huge not in answer.text
    assert "x" * 100 not in answer.text
    assert all(set(p) == {"type", "loc", "msg"} for p in answer.json()["detail"])
    assert body.status_code == 422
    assert "y" * 100 not in body.text
    assert "token" in body.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/api/v1/cdrs", "/api/v1/events", "/api/v1/agents/report"])
@pytest.mark.parametrize("value", ["20261204", "1764806400", "12.5"])
def test_a_bare_number_is_no_time(client: TestClient, path: str, value: str) -> None:
    """20261204 is a date in ISO-8601's basic form and, to a number reader, Unix time in
    1970: refused, naming the parameter, rather than read either way without a word."""
    answer = client.get(path, params={"from": value})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "from"]
    assert "ISO-8601" in answer.text
    assert client.get(path, params={"from": "2026-12-04T09:00:00+08:00"}).status_code == 200
