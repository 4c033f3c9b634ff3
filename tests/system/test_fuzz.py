"""Hostile input at scale: thousands of generated requests, zero 5xx, nothing disturbed.

Two generators share the budget (`CDRLOG_FUZZ_REQUESTS`; `make soak` gives 10,000+):
schemathesis derives requests for every operation of the app's own OpenAPI document,
both ones that fit the schema and ones that break it on purpose; and strategies of our
own post push bodies asterCC never would: near-valid events with one field wrong, form,
JSON and multipart bodies, broken encodings, odd content types, lying Content-Length
and other strange headers. Any answer of 500 or more fails (the app runs in process, so
an exception surfaces with its traceback, the request it was sent attached as a note).

Good calls are stored before the fuzzing and another is posted after it: the journal
must still hold every good event and every good call's CDR must be exact.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import core as hypothesis_core
from hypothesis import strategies as st
from hypothesis.internal import entropy as hypothesis_entropy
from hypothesis.internal.conjecture import engine as hypothesis_engine
from hypothesis.strategies._internal import collections as hypothesis_collections
from hypothesis.strategies._internal import core as hypothesis_strategies_core
from schemathesis import Case, GenerationMode
from schemathesis.generation import hypothesis as schemathesis_hypothesis
from sqlalchemy import Engine

from cdrlog.core.events import MAX_LENGTH
from cdrlog.service.settings import Settings
from cdrlog.sim.traffic import GeneratedCall, generate_calls
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app
from conftest import Backend
from support.chaos import env_size, event_key, journal_keys, wrong_cdrs

# CI's size: a few tens of seconds per backend; `make soak` asks for 10,000 or more.
DEFAULT_REQUESTS = 700
BASE = "http://testserver"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART = "multipart/form-data"
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
# Generation is random, yet a budget must be spent: never more rounds than this.
MAX_ROUNDS = 5
# Requests for an operation that takes no input (GET /healthz): a few are plenty.
INPUTLESS = 3


@dataclass
class Tally:
    """Requests sent, by operation and by answer; and cases that could not be sent."""

    sent: int = 0
    unsendable: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)

    def note(self, operation: str, status: int) -> None:
        self.sent += 1
        self.statuses[status] += 1
        self.operations[operation] += 1

    def classes(self) -> dict[str, int]:
        counted = Counter(f"{status // 100}xx" for status in self.statuses.elements())
        return dict(sorted(counted.items()))


@pytest.fixture
def hypothesis_put_back() -> Iterator[None]:
    """schemathesis, the first time it builds a strategy (or when its pytest plugin is
    imported), patches Hypothesis for the whole process: the printer of failing examples
    prints nothing (`n=,`) and buffers grow. Put Hypothesis back afterwards, so that the
    property tests running later in the session still show their failing examples."""
    patched = [
        (hypothesis_core, "RepresentationPrinter"),
        (hypothesis_core, "BUFFER_SIZE"),
        (hypothesis_engine, "BUFFER_SIZE"),
        (hypothesis_collections, "BUFFER_SIZE"),
        (hypothesis_strategies_core, "is_first_param_referenced_in_function"),
        (hypothesis_entropy, "register_random"),
    ]
    saved = [(module, name, getattr(module, name)) for module, name in patched]
    yield
    for module, name, value in saved:
        setattr(module, name, value)
    setattr(schemathesis_hypothesis.setup, "_is_patched", False)  # noqa: B010


@pytest.fixture
def app(backend: Backend, engine: Engine, tmp_path: Path) -> FastAPI:
    # A spool of its own: an event the database refused as if it were away would wait there.
    return create_app(Settings(database_url=backend.url, spool_dir=tmp_path / "spool"), engine)


@pytest.fixture
def app_client(app: FastAPI) -> Iterator[TestClient]:
    """The app in process; an exception inside it is raised here, traceback and all."""
    with TestClient(app, base_url=BASE) as client:
        yield client


def _fuzz(budget: int, strategy: st.SearchStrategy[Any], send: Callable[[Any], bool]) -> int:
    """Run `send` (True: a request went out) on examples of `strategy` until `budget`
    requests were sent or `MAX_ROUNDS` runs are over; how many were sent."""
    sent = 0
    for _ in range(MAX_ROUNDS):
        if sent >= budget:
            break

        @settings(
            max_examples=budget - sent,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(strategy)
        def one(example: Any) -> None:
            nonlocal sent
            sent += send(example)

        one()
    return sent


# --- schemathesis: every operation of the OpenAPI document ------------------------------


def _prepared(case: Case[Any]) -> requests.PreparedRequest | None:
    """The request schemathesis would send for `case`, as bytes; None if it cannot be
    sent at all (a header no HTTP client can write, say)."""
    try:
        return requests.Request(**case.as_transport_kwargs(base_url=BASE)).prepare()
    except (ValueError, UnicodeError, requests.RequestException):
        return None


def _wire_headers(headers: Mapping[str, str | bytes]) -> dict[str, bytes] | None:
    """Headers as the bytes on the wire (latin-1), Content-Length left to the client;
    None if a value cannot be written."""
    try:
        return {
            name: value if isinstance(value, bytes) else value.encode("latin-1")
            for name, value in headers.items()
            if name.lower() != "content-length"
        }
    except UnicodeEncodeError:
        return None


def _send_case(client: TestClient, tally: Tally, postgres: bool) -> Callable[[Case[Any]], bool]:
    def send(case: Case[Any]) -> bool:
        prepared = _prepared(case)
        headers = None if prepared is None else _wire_headers(prepared.headers)
        if prepared is None or headers is None or prepared.url is None or not prepared.method:
            tally.unsendable += 1
            return False
        body = prepared.body
        if isinstance(body, str):
            content: bytes | None = body.encode()
        elif body is None or isinstance(body, bytes):
            content = body
        else:
            tally.unsendable += 1  # a streamed body: schemathesis does not make these here
            return False
        try:
            response = client.request(
                prepared.method, prepared.url, headers=headers, content=content
            )
        except Exception as error:  # the app raised: say what it was sent
            error.add_note(f"request: {prepared.method} {prepared.url} {headers} {content!r}")
            raise
        tally.note(case.operation.label, response.status_code)
        assert response.status_code < 500, f"{case.operation.label}: {response.text[:500]}"
        return True

    return send


def operations(document: Mapping[str, Any]) -> dict[str, bool]:
    """Each operation's label (`GET /api/v1/cdrs`), and whether it takes any input."""
    return {
        f"{method.upper()} {path}": bool(spec.get("parameters") or spec.get("requestBody"))
        for path, item in document["paths"].items()
        for method, spec in item.items()
    }


def _fuzz_schema(
    client: TestClient,
    document: dict[str, Any],
    mode: GenerationMode,
    budget: int,
    postgres: bool,
) -> Tally:
    """`budget` requests spread evenly over the operations that take input (those that
    take none get `INPUTLESS` each, where the mode can make any)."""
    schema = schemathesis.openapi.from_dict(document)
    labels = {
        label: takes
        for label, takes in operations(document).items()
        if takes or mode is GenerationMode.POSITIVE
    }
    share = (budget - INPUTLESS * sum(not t for t in labels.values())) // sum(labels.values())
    tally = Tally()
    for label, takes in labels.items():
        method, path = label.split(" ", 1)
        strategy = schema[path][method.lower()].as_strategy(generation_mode=mode)
        _fuzz(share if takes else INPUTLESS, strategy, _send_case(client, tally, postgres))
    return tally


# --- our own push bodies --------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    path: str
    body: bytes
    headers: dict[str, str]


FIELDS = [*MAX_LENGTH, "orgidentity[]", "Event", "event ", "", "\x00", "x" * 300]
TEAMS = ["team1", "team2", "Team1", " team1", "team1 ", "t\x00", "a/b", "..", "x" * 64, "x" * 65]
PLAUSIBLE = [
    "ringing", "answer", "hangup", "link", "login", "logout", "RINGING", "",
    "CALLER", "CALLEE", "caller", "BOTH", "dialout", "dialin", "DialOut", "internal",
    "2026-11-26 10:00:00", "2026-11-26T10:00:00+14:00", "2026-11-26T10:00:00Z",
    "2026-02-30 25:61:61", "0000-00-00 00:00:00", "1969-12-31 23:59:59", "2199-12-31 23:59:59",
    "2200-01-01 00:00:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "1764151200", "1764151200.123456789", "999999999999", "9999999999999", "-1", "1e9", "NaN",
    "Infinity", "0x10", " 1764151200 ", "\u0661\u0667\u0666\u0664", "16", "17", "busy",
    "\x00", "null", "None", "[]", "{}", "%00", "13800138000", "8001", "1001",
]  # fmt: skip
values = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.text(max_size=40),
    st.text(min_size=60, max_size=140),  # around the column widths (64 and 128)
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
teams = st.one_of(st.sampled_from(TEAMS), st.text(min_size=1, max_size=70))


@st.composite
def near_valid_events(draw: st.DrawFn) -> dict[str, str]:
    """A well-formed call event of team1, often with a field removed, changed or added."""
    event = {
        "sessionid": draw(st.text("0123456789abcdef.", min_size=1, max_size=20)),
        "calltype": draw(st.sampled_from(["dialout", "dialin"])),
        "source": draw(st.sampled_from(["CALLER", "CALLEE"])),
        "event": draw(st.sampled_from(["ringing", "answer", "hangup", "login", "logout"])),
        "eventTime": draw(st.sampled_from(PLAUSIBLE[16:30])),
        "activenum": draw(st.text("0123456789", max_size=14)),
        "agentno": draw(st.sampled_from(["1001", "1002", ""])),
        "agentphone": draw(st.sampled_from(["8001", "8002", ""])),
        "orgidentity": "team1",
    }
    for name in draw(st.lists(st.sampled_from(sorted(event)), max_size=1)):
        del event[name]
    event |= draw(st.dictionaries(names, values, max_size=2))
    return event


events = st.one_of(near_valid_events(), st.dictionaries(names, values, max_size=12))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),
    values,
)
json_documents = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
    max_leaves=16,
)
CONTENT_TYPES = [
    FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1", JSON, "application/x+json",
    "text/plain", "TEXT/PLAIN; charset=utf-16", "application/octet-stream", "text/html",
    f"{MULTIPART}", f"{MULTIPART}; boundary=", f"{MULTIPART}; boundary=\"a b\"", ";;;=;",
    "application/json; charset=utf-32", "*/*", "\u00e9/\u00e9", "",
]  # fmt: skip
token = st.text(
    "abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1, max_size=20
)
header_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
odd_headers = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "content-length", "content-encoding", "transfer-encoding", "expect",
                "x-forwarded-for", "host", "accept", "cookie", "authorization", "connection",
            ]
        ),
        token,
    ),
    st.one_of(
        st.sampled_from(["0", "-1", "abc", str(2**64), "gzip", "chunked", "100-continue"]),
        header_value,
    ),
    max_size=3,
)  # fmt: skip


def _form(pairs: Sequence[tuple[str, str]]) -> bytes:
    return urlencode(list(pairs)).encode()


def _multipart(
    fields: dict[str, str], boundary: str, filename: str | None, cut: int | None
) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    if filename is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="{filename}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\r\n"
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", errors="surrogatepass")
    return body if cut is None else body[:cut]


@st.composite
def pushes(draw: st.DrawFn) -> Push:
    """One push request of any kind, its content type usually (not always) the right one."""
    kind = draw(st.sampled_from(["form", "pairs", "json", "batch", "multipart", "bytes", "big"]))
    fitting = FORM
    if kind == "form":
        body = _form(list(draw(events).items()))
    elif kind == "pairs":  # repeated fields, in any order
        body = _form(draw(st.lists(st.tuples(names, values), max_size=12)))
    elif kind == "json":
        body, fitting = json.dumps(draw(st.one_of(events, json_documents))).encode(), JSON
    elif kind == "batch":
        batch = draw(st.lists(st.one_of(events, json_documents), min_size=1, max_size=6))
        body, fitting = json.dumps(batch, ensure_ascii=draw(st.booleans())).encode(), JSON
    elif kind == "multipart":
        boundary = draw(st.one_of(st.just("xYz"), token))
        filename = draw(st.one_of(st.none(), st.text(max_size=8)))
        cut = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=400)))
        body = _multipart(draw(events), boundary, filename, cut)
        fitting = f"{MULTIPART}; boundary={boundary}"
    elif kind == "bytes":
        body = draw(st.binary(max_size=300))
    else:  # around the 1 MiB limit, where a body is read in part
        size = draw(
            st.sampled_from([1024 * 1024 - 9, 1024 * 1024 - 8, 1024 * 1024 + 1, 3 * 1024 * 1024])
        )
        body = b"sessionid=" + b"s" * size
    honest = draw(st.booleans())
    content_type = (
        fitting if honest else draw(st.one_of(st.sampled_from(CONTENT_TYPES), header_value))
    )
    headers = {"content-type": content_type} | draw(odd_headers)
    team = draw(st.one_of(st.just("team1"), st.none(), teams))
    path = "/astercc/events" if team is None else f"/astercc/{quote(team, safe='')}/events"
    return Push(path, body, headers)


def _send_push(client: TestClient, tally: Tally) -> Callable[[Push], bool]:
    def send(push: Push) -> bool:
        headers = {name: value.encode("latin-1") for name, value in push.headers.items()}
        try:
            response = client.post(push.path, content=push.body, headers=headers)
        except Exception as error:  # the app raised: say what it was sent
            error.add_note(f"request: {push}")
            raise
        tally.note("push", response.status_code)
        assert response.status_code < 500, f"{push}: {response.text[:500]}"
        return True

    return send


# --- good calls, before and after -----------------------------------------------------


def _good_calls(seed: int, team_prefix: str, calls: int) -> list[GeneratedCall]:
    """Realistic calls whose teams no generator here names, so fuzzing cannot touch them."""
    made = generate_calls(random.Random(seed), START, calls=calls, teams=2, agents=4)
    renamed = []
    for call in made:
        team = f"{team_prefix}-{call.agent.team}"
        renamed.append(
            dataclasses.replace(
                call,
                events=[event | {"orgidentity": team} for event in call.events],
                expected=dataclasses.replace(call.expected, team=team),
            )
        )
    return renamed


def _post_calls(client: TestClient, calls: Sequence[GeneratedCall]) -> None:
    for call in calls:
        for event in call.events:
            path = f"/astercc/{quote(event['orgidentity'], safe='')}/events"
            response = client.post(path, content=urlencode(event), headers={"content-type": FORM})
            assert response.status_code == 200, response.text


@pytest.mark.usefixtures("hypothesis_put_back")
def test_generated_requests_get_no_5xx_and_disturb_no_good_call(
    app: FastAPI,
    app_client: TestClient,
    engine: Engine,
    record_property: Callable[[str, object], None],
) -> None:
    budget = env_size("CDRLOG_FUZZ_REQUESTS", DEFAULT_REQUESTS, minimum=10)
    before = _good_calls(seed=1, team_prefix="before", calls=12)
    _post_calls(app_client, before)
    good = {event_key(e["orgidentity"], e) for call in before for e in call.events}
    document = app.openapi()
    began = time.monotonic()

    postgres = engine.dialect.name == "postgresql"
    valid = _fuzz_schema(app_client, document, GenerationMode.POSITIVE, budget // 4, postgres)
    invalid = _fuzz_schema(app_client, document, GenerationMode.NEGATIVE, budget // 4, postgres)
    push = Tally()
    _fuzz(budget - valid.sent - invalid.sent, pushes(), _send_push(app_client, push))

    after = _good_calls(seed=2, team_prefix="after", calls=3)
    _post_calls(app_client, after)
    elapsed = time.monotonic() - began
    sent = valid.sent + invalid.sent + push.sent
    record_property("fuzz_requests", sent)
    print(
        f"\nfuzz: {sent} requests in {elapsed:.1f} s; schemathesis positive {valid.sent} "
        f"{valid.classes()}, negative {invalid.sent} {invalid.classes()} "
        f"({valid.unsendable + invalid.unsendable} unsendable cases); "
        f"own push bodies {push.sent} {push.classes()}; "
        f"per operation {dict(valid.operations + invalid.operations)}"
    )

    assert sent >= budget
    # Every operation got requests; and bad ones, wherever it takes something to get wrong.
    labels = operations(document)
    assert set(valid.operations) == set(labels)
    assert set(invalid.operations) == {label for label, takes in labels.items() if takes}
    assert good <= set(journal_keys(engine)), "good events lost from the journal"
    assert wrong_cdrs(engine, [*before, *after], others_allowed=True) == []
    ready = app_client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready"), ready.text


@pytest.mark.parametrize("tz", ["America", "Etc", "a" * 300], ids=["America", "Etc", "300-a"])
def test_a_tz_that_is_a_directory_or_too_long_is_refused_with_400(
    sqlite_url: str, tmp_path: Path, tz: str
) -> None:
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        settings = Settings(database_url=sqlite_url, spool_dir=tmp_path / "spool")
        app = create_app(settings, engine)
        with TestClient(app, raise_server_exceptions=False) as client:
            statuses = {
                path: client.get(path, params={"tz": tz}).status_code
                for path in ("/api/v1/cdrs", "/api/v1/stats?group_by=team", "/api/v1/events")
            }
    finally:
        engine.dispose()
    assert set(statuses.values()) == {400}, statuses


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("export", ["csv", "jsonl"])
def test_a_nul_in_an_export_filter_is_refused_with_400(
    backend: Backend, engine: Engine, tmp_path: Path, export: str
) -> None:
    settings = Settings(database_url=backend.url, spool_dir=tmp_path / "spool")
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        page = client.get("/api/v1/cdrs", params={"dst": "\x00"})
        exported = client.get("/api/v1/cdrs", params={"dst": "\x00", "format": export})

    assert page.status_code == 400
    assert 400 <= exported.status_code < 500, (exported.status_code, exported.text)
