"""Who may push and read what, on every backend: the isolation matrix (a read token of
team alpha against every read endpoint and export, with zebra's calls, journal and dead
letters present), missing / wrong / revoked / wrong-scope tokens everywhere, pushes to
another team's URL, the dashboard's session cookie and its CSRF check, open mode, and a
fuzz of whatever a client may put where a token goes.

Zebra's data always carries the word "zebra" (its team, its session ids), so "nothing of
zebra appears" is checked on the raw answer text, whatever its format.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Table, func, select

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine
from cdrlog.store.tables import call_event, cdr, dead_letter
from cdrlog.web.app import create_app
from cdrlog.web.auth import CSRF_COOKIE, SESSION_COOKIE
from conftest import Backend, empty_tables
from support.teams import ALPHA, Fields, bearer, call_events

ZEBRA = "zebra"
HTTPS = "https://testserver"  # the session cookie is Secure: httpx sends it over https only
NO_SUCH_TOKEN = "cdrlog_" + "0" * 64


def bad_event(team: str, sessionid: str) -> Fields:
    """Refused (its eventTime is no time), so it becomes one of `team`'s dead letters."""
    return call_events(team, sessionid, "1001", datetime(2024, 3, 5, 9))[0] | {
        "eventTime": "yesterday-ish"
    }


# Agent 1001 works in both teams: statistics by agent must still keep them apart.
# Zebra has calls in an hour and on a day alpha has none, and in alpha's hour too.
ALPHA_CALLS = [
    call_events(ALPHA, "alpha-1", "1001", datetime(2024, 3, 5, 9, 0, 5)),
    call_events(ALPHA, "alpha-2", "1002", datetime(2024, 3, 5, 9, 20)),
]
ZEBRA_CALLS = [
    call_events(ZEBRA, "zebra-1", "1001", datetime(2024, 3, 5, 9, 10)),
    call_events(ZEBRA, "zebra-2", "2002", datetime(2024, 3, 5, 14, 0)),
    call_events(ZEBRA, "zebra-3", "2002", datetime(2024, 3, 7, 23, 30)),
]
ALPHA_EVENTS = sum(len(c) for c in ALPHA_CALLS)
ZEBRA_EVENTS = sum(len(c) for c in ZEBRA_CALLS)


@dataclass(frozen=True)
class Tokens:
    push_alpha: str
    push_zebra: str
    read_alpha: str
    read_zebra: str
    admin: str


@dataclass(frozen=True)
class World:
    """An app with tokens, and both teams' calls, journal and dead letters stored."""

    client: TestClient
    engine: Engine
    store: TokenStore
    tokens: Tokens
    cdr_ids: dict[str, list[int]]
    letter_ids: dict[str, list[int]]


def secured_client(database_url: str, engine: Engine) -> TestClient:
    """The app with no token cache, so a revocation takes effect at once."""
    immediate = Settings(database_url=database_url, token_cache_seconds=0)
    return TestClient(create_app(immediate, engine), base_url=HTTPS)


def push(client: TestClient, team: str, events: list[Fields], token: str) -> httpx.Response:
    answer: httpx.Response = client.post(
        f"/astercc/{team}/events", json=events, params={"token": token}
    )
    return answer


def counted(engine: Engine, table: Table, team: str | None = None) -> int:
    query = select(func.count()).select_from(table)
    if team is not None:
        query = query.where(table.c.orgidentity == team)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def stored_rows(engine: Engine) -> tuple[int, int, int]:
    return counted(engine, cdr), counted(engine, call_event), counted(engine, dead_letter)


def fill(client: TestClient, engine: Engine, tokens: Tokens) -> World:
    store = TokenStore(engine, utc_now, cache_seconds=0)
    letters: dict[str, list[int]] = {}
    for team, calls, token, bad in [
        (ALPHA, ALPHA_CALLS, tokens.push_alpha, 1),
        (ZEBRA, ZEBRA_CALLS, tokens.push_zebra, 2),
    ]:
        answer = push(client, team, [event for events in calls for event in events], token)
        assert answer.status_code == 200, answer.text
        refused = [bad_event(team, f"{team}-bad-{n}") for n in range(bad)]
        answer = push(client, team, refused, token)
        assert answer.status_code == 400, answer.text
        letters[team] = [item["dead_letter_id"] for item in answer.json()["rejected"]]
    with engine.connect() as connection:
        found = connection.execute(select(cdr.c.id, cdr.c.orgidentity).order_by(cdr.c.id))
        ids: dict[str, list[int]] = {ALPHA: [], ZEBRA: []}
        for cdr_id, team in found:
            ids[team].append(cdr_id)
    return World(client, engine, store, tokens, ids, letters)


@contextmanager
def populated(engine: Engine) -> Iterator[World]:
    store = TokenStore(engine, utc_now)
    tokens = Tokens(
        push_alpha=store.create(TokenScope.PUSH, ALPHA).token,
        push_zebra=store.create(TokenScope.PUSH, ZEBRA).token,
        read_alpha=store.create(TokenScope.READ, ALPHA).token,
        read_zebra=store.create(TokenScope.READ, ZEBRA).token,
        admin=store.create(TokenScope.ADMIN, None, "tests").token,
    )
    url = engine.url.render_as_string(hide_password=False)
    with secured_client(url, engine) as client:
        yield fill(client, engine, tokens)


class SharedWorld:
    """One world per database for the tests that store nothing (a refused push stores
    nothing, and they check so); the tests that store use `fresh`. A test of another
    kind empties the tables (the `engine` fixture): the world is then built again."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stack = ExitStack()
        self.built: World | None = None

    def get(self) -> World:
        if self.built is None or not intact(self.built):
            self.close()
            engine = make_engine(self.url)
            self.stack.callback(engine.dispose)
            empty_tables(engine)
            self.built = self.stack.enter_context(populated(engine))
        return self.built

    def close(self) -> None:
        self.stack.close()
        self.stack = ExitStack()


def intact(world: World) -> bool:
    stored = (len(ALPHA_CALLS) + len(ZEBRA_CALLS), ALPHA_EVENTS + ZEBRA_EVENTS, 3)
    alive = world.store.grant(world.tokens.admin) is not None
    return alive and stored_rows(world.engine) == stored


@pytest.fixture(scope="module")
def shared_world(backend: Backend) -> Iterator[SharedWorld]:
    shared = SharedWorld(backend.url)
    yield shared
    shared.close()


@pytest.fixture
def world(shared_world: SharedWorld) -> World:
    return shared_world.get()


@pytest.fixture
def fresh(engine: Engine) -> Iterator[World]:
    with populated(engine) as built:
        yield built


@pytest.fixture
def visitor(world: World) -> Iterator[TestClient]:
    """A browser of its own (its own cookies) on the world's app; it may only read."""
    client = TestClient(world.client.app, base_url=HTTPS)
    yield client
    client.close()


# --- what each read endpoint shows, counted in its own format ---------------------------


@dataclass(frozen=True)
class View:
    """One read endpoint in one format, and how to count the items an answer holds."""

    name: str
    path: str
    params: dict[str, str]
    items: str  # cdrs | csv | jsonl | stats | events | rejected | agents
    headers: dict[str, str] = field(default_factory=dict)

    def get(self, client: TestClient, token: str, **extra: str) -> httpx.Response:
        headers = self.headers | bearer(token)
        answer: httpx.Response = client.get(self.path, params=self.params | extra, headers=headers)
        return answer

    def count(self, answer: httpx.Response) -> int:
        if self.items == "csv":
            return len(list(csv.DictReader(io.StringIO(answer.text))))
        if self.items == "jsonl":
            return len([json.loads(line) for line in answer.text.splitlines() if line])
        document: dict[str, Any] = answer.json()
        if self.items == "cdrs":
            total: int = document["total"]
            assert total == len(document["cdrs"]), "all fit on one page"
            return total
        if self.items == "stats":
            return sum(int(row["calls"]) for row in document["rows"])
        return len(document[self.items])


VIEWS = [
    View("cdrs json", "/api/v1/cdrs", {}, "cdrs"),
    View("cdrs csv", "/api/v1/cdrs", {"format": "csv"}, "csv"),
    View("cdrs csv by Accept", "/api/v1/cdrs", {}, "csv", {"Accept": "text/csv"}),
    View("cdrs jsonl", "/api/v1/cdrs", {"format": "jsonl"}, "jsonl"),
    View("cdrs csv limited", "/api/v1/cdrs", {"format": "csv", "limit": "1000"}, "csv"),
    View("closed cdrs", "/api/v1/cdrs", {"status": "closed", "sort": "oldest"}, "cdrs"),
    View("stats by agent", "/api/v1/stats", {"group_by": "agent"}, "stats"),
    View("stats by team", "/api/v1/stats", {"group_by": "team"}, "stats"),
    View("stats by day", "/api/v1/stats", {"group_by": "day"}, "stats"),
    View("stats by hour", "/api/v1/stats", {"group_by": "hour"}, "stats"),
    View("events", "/api/v1/events", {}, "events"),
    View("rejected", "/api/v1/rejected", {}, "rejected"),
    View("agents", "/api/v1/agents", {}, "agents"),
    View("unresolved rejected", "/api/v1/rejected", {"unresolved": "true"}, "rejected"),
]
VIEWS_BY_NAME = {view.name: view for view in VIEWS}
# Each read endpoint in each format once: the views a refused token is tried on.
GUARDED = {
    "cdrs json",
    "cdrs csv",
    "cdrs jsonl",
    "stats by agent",
    "events",
    "rejected",
    "agents",
}
# What each kind of view holds per team: calls, journaled events, dead letters or agents.
ALPHA_HOLDS = {"events": ALPHA_EVENTS, "rejected": 1, "agents": 2}
ZEBRA_HOLDS = {"events": ZEBRA_EVENTS, "rejected": 2, "agents": 2}


def expected(view: View, holds: dict[str, int], calls: int) -> int:
    return holds.get(view.items, calls)


def test_a_read_token_of_alpha_sees_all_of_alpha_and_nothing_of_zebra(world: World) -> None:
    problems: list[str] = []
    for view in VIEWS:
        answer = view.get(world.client, world.tokens.read_alpha)
        if answer.status_code != 200:
            problems.append(f"{view.name}: {answer.status_code} {answer.text[:200]}")
            continue
        if ZEBRA in answer.text:
            problems.append(f"{view.name} shows zebra: {answer.text[:300]}")
        if ALPHA not in answer.text and view.items != "stats":
            problems.append(f"{view.name} does not show alpha")
        want = expected(view, ALPHA_HOLDS, len(ALPHA_CALLS))
        if view.count(answer) != want:
            problems.append(f"{view.name}: {view.count(answer)} items, not {want}")
    assert problems == []


def test_statistics_keep_an_agent_of_two_teams_apart(world: World) -> None:
    answer = VIEWS_BY_NAME["stats by agent"].get(world.client, world.tokens.read_alpha)
    rows = {(row["group"], row["team"]): row["calls"] for row in answer.json()["rows"]}
    assert rows == {("1001", ALPHA): 1, ("1002", ALPHA): 1}
    by_team = world.client.get(
        "/api/v1/stats", params={"group_by": "team"}, headers=bearer(world.tokens.read_alpha)
    )
    assert [(row["group"], row["calls"]) for row in by_team.json()["rows"]] == [(ALPHA, 2)]


def test_asking_a_read_token_of_alpha_for_zebra_gives_nothing(world: World) -> None:
    problems: list[str] = []
    asks = [{"team": ZEBRA}, {"orgidentity": ZEBRA}]
    for view in VIEWS:
        for ask in asks:
            if view.items in ("events", "rejected") and "orgidentity" in ask:
                continue  # the journal and dead letters take `team` only
            answer = view.get(world.client, world.tokens.read_alpha, **ask)
            if answer.status_code != 200 or ZEBRA in answer.text or view.count(answer):
                problems.append(f"{view.name} {ask}: {answer.status_code} {answer.text[:300]}")
    for sessionid in ("zebra-1", "zebra-2"):
        answer = world.client.get(
            "/api/v1/events",
            params={"sessionid": sessionid},
            headers=bearer(world.tokens.read_alpha),
        )
        if answer.json() != {"events": [], "next_before": None}:
            problems.append(f"events of {sessionid}: {answer.text[:300]}")
    assert problems == []


def test_a_cdr_of_zebra_is_not_found_with_a_read_token_of_alpha(world: World) -> None:
    for cdr_id in world.cdr_ids[ZEBRA]:
        answer = world.client.get(f"/api/v1/cdrs/{cdr_id}", headers=bearer(world.tokens.read_alpha))
        assert answer.status_code == 404, answer.text
        assert ZEBRA not in answer.text
    for cdr_id in world.cdr_ids[ALPHA]:
        answer = world.client.get(f"/api/v1/cdrs/{cdr_id}", headers=bearer(world.tokens.read_alpha))
        assert answer.status_code == 200, answer.text
        detail = answer.json()
        assert detail["orgidentity"] == ALPHA
        assert {event["orgidentity"] for event in detail["events"]} == {ALPHA}
        assert len(detail["events"]) == 3


def test_a_read_token_of_zebra_sees_only_zebra(world: World) -> None:
    for view in VIEWS:
        answer = view.get(world.client, world.tokens.read_zebra)
        assert answer.status_code == 200, (view.name, answer.text)
        assert ALPHA not in answer.text, view.name
        assert view.count(answer) == expected(view, ZEBRA_HOLDS, len(ZEBRA_CALLS)), view.name


def test_an_admin_token_sees_both_teams(world: World) -> None:
    both = {"events": ALPHA_EVENTS + ZEBRA_EVENTS, "rejected": 3, "agents": 4}
    for view in VIEWS:
        answer = view.get(world.client, world.tokens.admin)
        assert answer.status_code == 200, (view.name, answer.text)
        assert view.count(answer) == expected(view, both, 5), view.name
        if view.items != "stats" or view.params["group_by"] in ("agent", "team"):
            assert ALPHA in answer.text
            assert ZEBRA in answer.text
        narrowed = view.get(world.client, world.tokens.admin, team=ZEBRA)
        assert view.count(narrowed) == expected(view, ZEBRA_HOLDS, 3), view.name
    for cdr_id in world.cdr_ids[ALPHA] + world.cdr_ids[ZEBRA]:
        answer = world.client.get(f"/api/v1/cdrs/{cdr_id}", headers=bearer(world.tokens.admin))
        assert answer.status_code == 200


# --- tokens that must be refused, on every endpoint ------------------------------------


@dataclass(frozen=True)
class Endpoint:
    kind: str  # push | read | admin | metrics
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def send(self, client: TestClient, token: str | None, how: str = "header") -> httpx.Response:
        headers = bearer(token) if token is not None and how == "header" else {}
        params = self.params | ({"token": token} if token is not None and how == "query" else {})
        answer: httpx.Response = client.request(
            self.method, self.path, params=params, headers=headers, json=self.body
        )
        return answer


def endpoints(world: World) -> list[Endpoint]:
    new_call = call_events(ALPHA, "alpha-new", "1003", datetime(2024, 3, 8, 8))
    cdr_id = world.cdr_ids[ALPHA][0]
    letter_id = world.letter_ids[ALPHA][0]
    return [
        Endpoint("push", "POST", f"/astercc/{ALPHA}/events", body=new_call[0]),
        Endpoint("push", "POST", "/astercc/events", body=new_call[1]),
        *(
            Endpoint("read", "GET", view.path, view.params)
            for view in VIEWS
            if view.name in GUARDED
        ),
        Endpoint("read", "GET", f"/api/v1/cdrs/{cdr_id}"),
        Endpoint("admin", "POST", f"/api/v1/rejected/{letter_id}/retry"),
        Endpoint("admin", "GET", "/api/v1/hooks"),
        Endpoint("admin", "GET", "/api/v1/hooks/failed"),
        Endpoint("read", "GET", "/api/v1/alerts"),
        Endpoint("admin", "GET", "/api/v1/alerts/rules"),
        Endpoint("metrics", "GET", "/metrics"),
    ]


def refusals(world: World, token: str | None, status: int, kinds: set[str]) -> list[str]:
    """Every endpoint of `kinds` that does not answer `status` to `token`, both ways."""
    wrong = []
    for endpoint in endpoints(world):
        if endpoint.kind not in kinds:
            continue
        for how in ("header", "query") if token is not None else ("header",):
            answer = endpoint.send(world.client, token, how)
            if answer.status_code != status:
                sent = f"{endpoint.method} {endpoint.path} {endpoint.params} ({how})"
                wrong.append(f"{sent}: {answer.status_code} {answer.text[:160]}")
            elif status == 401 and answer.headers.get("www-authenticate") != "Bearer":
                wrong.append(f"{endpoint.path}: 401 without WWW-Authenticate: Bearer")
    return wrong


ALL_KINDS = {"push", "read", "admin", "metrics"}


def test_a_missing_or_unknown_token_gets_401_everywhere(world: World) -> None:
    before = stored_rows(world.engine)
    for token in (None, "", NO_SUCH_TOKEN, "nonsense"):
        assert refusals(world, token, 401, ALL_KINDS) == [], f"token {token!r}"
    assert stored_rows(world.engine) == before


def test_a_revoked_token_gets_401_everywhere(fresh: World) -> None:
    doomed = {
        scope: fresh.store.create(scope, ALPHA if scope.has_team else None) for scope in TokenScope
    }
    kinds = {
        TokenScope.PUSH: {"push"},
        TokenScope.READ: {"read"},
        TokenScope.ADMIN: {"read", "metrics"},
        TokenScope.METRICS: {"metrics"},
    }
    for scope, created in doomed.items():
        assert refusals(fresh, created.token, 200, kinds[scope]) == [], f"{scope} before revoking"
        assert fresh.store.revoke(created.id)
    before = stored_rows(fresh.engine)
    for scope, created in doomed.items():
        assert refusals(fresh, created.token, 401, ALL_KINDS) == [], f"revoked {scope}"
    assert stored_rows(fresh.engine) == before


def test_a_metrics_token_reads_the_metrics_and_nothing_else(world: World) -> None:
    metrics_token = world.store.create(TokenScope.METRICS, None).token
    read_token = world.store.create(TokenScope.READ, ALPHA).token
    assert refusals(world, metrics_token, 200, {"metrics"}) == []
    assert refusals(world, metrics_token, 403, {"push", "read", "admin"}) == []
    assert refusals(world, read_token, 403, {"metrics"}) == []


def test_a_push_token_may_not_read_or_retry(world: World) -> None:
    for token in (world.tokens.push_alpha, world.tokens.push_zebra):
        assert refusals(world, token, 403, {"read", "admin"}) == []


def test_a_read_token_may_not_push_or_retry(world: World) -> None:
    before = stored_rows(world.engine)
    for token in (world.tokens.read_alpha, world.tokens.read_zebra):
        assert refusals(world, token, 403, {"push", "admin"}) == []
    assert stored_rows(world.engine) == before


def test_an_admin_token_may_retry_a_dead_letter(world: World) -> None:
    letter_id = world.letter_ids[ZEBRA][0]
    answer = world.client.post(
        f"/api/v1/rejected/{letter_id}/retry", headers=bearer(world.tokens.admin)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "rejected"  # its eventTime is still no time


def test_a_push_token_of_alpha_cannot_push_to_zebra(world: World) -> None:
    before = stored_rows(world.engine)
    forged = call_events(ZEBRA, "zebra-forged", "2002", datetime(2024, 3, 9, 9))
    as_json = push(world.client, ZEBRA, forged, world.tokens.push_alpha)
    as_form = world.client.post(
        f"/astercc/{ZEBRA}/events", data=forged[0], headers=bearer(world.tokens.push_alpha)
    )
    broken = world.client.post(
        f"/astercc/{ZEBRA}/events", content=b"{", params={"token": world.tokens.push_alpha}
    )
    for answer in (as_json, as_form, broken):
        assert answer.status_code == 403, answer.text
    assert stored_rows(world.engine) == before  # not even a dead letter


def test_the_generic_url_takes_only_the_push_tokens_own_team(fresh: World) -> None:
    before_zebra = [counted(fresh.engine, t, ZEBRA) for t in (cdr, call_event, dead_letter)]
    forged = call_events(ZEBRA, "zebra-forged", "2002", datetime(2024, 3, 9, 9))
    one = fresh.client.post(
        "/astercc/events", json=forged[0], headers=bearer(fresh.tokens.push_alpha)
    )
    assert one.status_code == 400, one.text
    assert set(one.json()["errors"]) == {"orgidentity"}
    batch = fresh.client.post(
        "/astercc/events", json=forged, params={"token": fresh.tokens.push_alpha}
    )
    assert batch.status_code == 400, batch.text
    assert batch.json()["stored"] == 0
    after_zebra = [counted(fresh.engine, t, ZEBRA) for t in (cdr, call_event, dead_letter)]
    assert after_zebra == before_zebra
    own = call_events(ALPHA, "alpha-generic", "1001", datetime(2024, 3, 9, 9))
    unnamed = [{k: v for k, v in e.items() if k != "orgidentity"} for e in own]
    stored = fresh.client.post(
        "/astercc/events", json=unnamed, headers=bearer(fresh.tokens.push_alpha)
    )
    assert stored.status_code == 200, stored.text
    assert counted(fresh.engine, cdr, ALPHA) == len(ALPHA_CALLS) + 1
    admin = fresh.client.post("/astercc/events", json=forged, headers=bearer(fresh.tokens.admin))
    assert admin.status_code == 200, admin.text


def test_a_token_works_in_the_query_and_in_the_header(fresh: World) -> None:
    events = call_events(ALPHA, "alpha-ways", "1001", datetime(2024, 3, 9, 10))
    ways: list[dict[str, Any]] = [
        {"params": {"token": fresh.tokens.push_alpha}},
        {"headers": bearer(fresh.tokens.push_alpha)},
        {"headers": {"Authorization": f"bearer   {fresh.tokens.push_alpha}  "}},
    ]
    for way, event in zip(ways, events, strict=True):
        answer = fresh.client.post(f"/astercc/{ALPHA}/events", json=event, **way)
        assert answer.status_code == 200, (way, answer.text)
    for token in (fresh.tokens.read_alpha, fresh.tokens.admin):
        by_query = fresh.client.get("/api/v1/cdrs", params={"token": token})
        by_header = fresh.client.get("/api/v1/cdrs", headers=bearer(token))
        assert by_query.status_code == by_header.status_code == 200
        assert by_query.json() == by_header.json()


def test_a_header_token_wins_over_a_query_token(world: World) -> None:
    answer = world.client.get(
        "/api/v1/cdrs", params={"token": world.tokens.admin}, headers=bearer("nonsense")
    )
    assert answer.status_code == 401


# --- the dashboard's session -----------------------------------------------------------


def sign_in(client: TestClient, token: str) -> httpx.Response:
    answer: httpx.Response = client.post("/api/v1/session", json={"token": token})
    return answer


def cookie_attributes(answer: httpx.Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers by cookie name: attribute (lower case) -> value."""
    found: dict[str, dict[str, str]] = {}
    for header in answer.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name = first.split("=", 1)[0]
        found[name] = {}
        for attribute in attributes:
            key, _, value = attribute.partition("=")
            found[name][key.lower()] = value.lower()
    return found


def test_the_session_cookie_is_http_only_secure_and_strict(
    world: World, visitor: TestClient
) -> None:
    answer = sign_in(visitor, world.tokens.read_alpha)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"signed_in": True, "scope": "read", "team": ALPHA}
    cookies = cookie_attributes(answer)
    session = cookies[SESSION_COOKIE]
    assert "httponly" in session
    assert "secure" in session
    assert session["samesite"] == "strict"
    csrf = cookies[CSRF_COOKIE]
    assert "httponly" not in csrf  # the page reads it to echo it in X-CSRF-Token
    assert "secure" in csrf
    assert csrf["samesite"] == "strict"
    assert visitor.cookies[CSRF_COOKIE] not in (world.tokens.read_alpha, "")


def test_a_session_reads_like_its_token_and_signs_out(world: World, visitor: TestClient) -> None:
    client = visitor
    assert client.get("/api/v1/session").json() == {
        "required": True,
        "signed_in": False,
        "scope": None,
        "team": None,
    }
    assert client.get("/api/v1/cdrs").status_code == 401
    sign_in(client, world.tokens.read_alpha)
    assert client.get("/api/v1/session").json() == {
        "required": True,
        "signed_in": True,
        "scope": "read",
        "team": ALPHA,
    }
    listed = client.get("/api/v1/cdrs", params={"format": "jsonl"})
    assert listed.status_code == 200
    assert len(listed.text.splitlines()) == len(ALPHA_CALLS)
    assert ZEBRA not in listed.text
    csrf = client.cookies[CSRF_COOKIE]
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/api/v1/cdrs").status_code == 401
    assert client.get("/api/v1/session").json()["signed_in"] is False


def test_only_read_and_admin_tokens_sign_in(world: World, visitor: TestClient) -> None:
    for token, status in [
        (world.tokens.push_alpha, 403),
        (NO_SUCH_TOKEN, 401),
        ("", 401),
        (world.tokens.admin, 200),
    ]:
        visitor.cookies.clear()
        answer = sign_in(visitor, token)
        assert answer.status_code == status, (token, answer.text)
        assert (SESSION_COOKIE in visitor.cookies) == (status == 200)


def test_a_revoked_token_ends_its_session(world: World, visitor: TestClient) -> None:
    created = world.store.create(TokenScope.READ, ALPHA)
    sign_in(visitor, created.token)
    assert visitor.get("/api/v1/cdrs").status_code == 200
    world.store.revoke(created.id)
    assert visitor.get("/api/v1/cdrs").status_code == 401
    assert visitor.get("/api/v1/session").json()["signed_in"] is False


def test_a_read_session_may_not_retry_even_with_the_csrf_header(
    world: World, visitor: TestClient
) -> None:
    sign_in(visitor, world.tokens.read_alpha)
    csrf = visitor.cookies[CSRF_COOKIE]
    letter = f"/api/v1/rejected/{world.letter_ids[ALPHA][0]}/retry"
    answer = visitor.post(letter, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 403
    assert "admin" in answer.json()["detail"]


def test_a_cookie_session_must_echo_the_csrf_cookie_to_post(fresh: World) -> None:
    client = fresh.client
    sign_in(client, fresh.tokens.admin)
    csrf = client.cookies[CSRF_COOKIE]
    letter = f"/api/v1/rejected/{fresh.letter_ids[ALPHA][0]}/retry"
    event = call_events(ALPHA, "alpha-csrf", "1001", datetime(2024, 3, 9, 11))[0]
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        answer = client.post(letter, headers=headers)
        assert answer.status_code == 403, answer.text
        assert "X-CSRF-Token" in answer.json()["detail"]
        pushed = client.post(f"/astercc/{ALPHA}/events", json=event, headers=headers)
        assert pushed.status_code == 403, pushed.text
    assert client.get("/api/v1/rejected").status_code == 200  # reading needs no header
    answer = client.post(letter, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    pushed = client.post(f"/astercc/{ALPHA}/events", json=event, headers={"X-CSRF-Token": csrf})
    assert pushed.status_code == 200, pushed.text


# --- fuzz: whatever a client puts where a token goes -----------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
GARBAGE = st.one_of(
    TEXT,
    st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=80),
    st.builds(lambda n, c: c * n, st.integers(1_000, 20_000), st.sampled_from("xA0%;=")),
    st.builds(lambda tail: "cdrlog_" + tail, st.text("0123456789abcdef", min_size=60, max_size=70)),
)
CARRIERS = st.sampled_from(["bearer", "authorization", "query", "cookie"])


def carried(carrier: str, value: str) -> dict[str, Any]:
    """Request options putting `value` where `carrier` says a token may come."""
    raw = value.encode("utf-8")
    if carrier == "bearer":
        return {"headers": [(b"authorization", b"Bearer " + raw)]}
    if carrier == "authorization":
        return {"headers": [(b"authorization", raw)]}
    if carrier == "query":
        return {"params": {"token": value}}
    return {"headers": [(b"cookie", SESSION_COOKIE.encode() + b"=" + raw)]}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(carrier=CARRIERS, value=GARBAGE, target=st.sampled_from(["push", "read"]))
def test_no_garbage_token_gets_in_or_breaks_anything(
    world: World, carrier: str, value: str, target: str
) -> None:
    event = call_events(ALPHA, "alpha-fuzz", "1001", datetime(2024, 3, 9, 12))[0]
    if target == "push":
        answer = world.client.post(
            f"/astercc/{ALPHA}/events", json=event, **carried(carrier, value)
        )
    else:
        answer = world.client.get("/api/v1/cdrs", **carried(carrier, value))
    assert answer.status_code < 500, answer.text
    assert answer.status_code in (401, 403), (answer.status_code, answer.text)
    assert counted(world.engine, call_event, ALPHA) == ALPHA_EVENTS


# --- open mode: no token in the store ------------------------------------------------


def test_without_any_token_the_service_is_open(settings: Settings, engine: Engine) -> None:
    with secured_client(settings.database_url, engine) as client:
        assert client.get("/api/v1/session").json() == {
            "required": False,
            "signed_in": False,
            "scope": None,
            "team": None,
        }
        for events in (*ALPHA_CALLS, *ZEBRA_CALLS):
            assert client.post("/astercc/events", json=events).status_code == 200
        letter = client.post(f"/astercc/{ALPHA}/events", json=[bad_event(ALPHA, "x")])
        assert letter.status_code == 400
        for view in VIEWS:
            answer = view.get(client, "anything at all")
            assert answer.status_code == 200, (view.name, answer.text)
            everything = {"events": 15, "rejected": 1, "agents": 4}
            assert view.count(answer) == expected(view, everything, 5)
        letter_id = letter.json()["rejected"][0]["dead_letter_id"]
        assert client.post(f"/api/v1/rejected/{letter_id}/retry").status_code == 200
        assert sign_in(client, NO_SUCH_TOKEN).status_code == 401


def test_without_tokens_only_loopback_clients_are_served(backend: Backend, engine: Engine) -> None:
    # A reverse proxy on this host reports its client's address: a remote reader of an
    # open service is refused, a local one is served, and --allow-open serves both.
    settings = Settings(database_url=backend.url, token_cache_seconds=0)
    local_host = "http://127.0.0.1:8080"
    remote = TestClient(create_app(settings, engine), local_host, client=("203.0.113.9", 40000))
    local = TestClient(create_app(settings, engine), local_host, client=("127.0.0.1", 40000))
    assert remote.get("/api/v1/cdrs").status_code == 401
    assert local.get("/api/v1/cdrs").status_code == 200
    trusted = Settings(database_url=backend.url, token_cache_seconds=0, allow_open=True)
    assert (
        TestClient(create_app(trusted, engine), local_host, client=("203.0.113.9", 1))
        .get("/api/v1/cdrs")
        .is_success
    )
