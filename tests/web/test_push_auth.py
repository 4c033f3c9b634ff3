"""The token rollout on every backend: each team's push-auth mode decides what a push
without a token meets (open: accepted; observe: accepted and counted; required: 401),
on the team's URL and, per event, on the shared one; a presented token is checked in
every mode; refusals are counted and logged within a rate, never stored; and a mode set
by another process takes effect within the token cache's time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from cdrlog.core.pushauth import EVERY_TEAM, PushMode
from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.settings import Settings
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.tables import call_event, dead_letter
from cdrlog.web.app import create_app
from support.teams import ALPHA, Fields, bearer, call_events

BETA = "beta"
START = datetime(2024, 3, 5, 9)


@pytest.fixture
def store(engine: Engine) -> TokenStore:
    """Tokens as an install that had them before modes existed: no mode is set."""
    made = TokenStore(engine, utc_now, cache_seconds=0)
    made.create(TokenScope.PUSH, ALPHA)
    made.create(TokenScope.ADMIN, None)
    return made


@pytest.fixture
def app_client(settings: Settings, engine: Engine, store: TokenStore) -> Iterator[TestClient]:
    immediate = settings.model_copy(update={"token_cache_seconds": 0})
    with TestClient(create_app(immediate, engine), base_url="https://testserver") as client:
        yield client


def events(team: str, session: str) -> list[Fields]:
    return call_events(team, session, "1001", START)


def push(
    client: TestClient, team: str | None, body: list[Fields], **headers: str
) -> httpx.Response:
    path = f"/astercc/{team}/events" if team else "/astercc/events"
    answer: httpx.Response = client.post(path, json=body, headers=headers)
    return answer


def journal(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(call_event)).scalar_one())


def letters(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(dead_letter)).scalar_one())


def admin_of(store: TokenStore) -> dict[str, str]:
    return bearer(store.create(TokenScope.ADMIN, None).token)


def test_an_install_with_tokens_and_no_mode_still_requires_them(
    app_client: TestClient, engine: Engine
) -> None:
    answer = push(app_client, ALPHA, events(ALPHA, "s1"))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "team 'alpha' needs a push token"}
    assert (journal(engine), letters(engine)) == (0, 0)


@pytest.mark.parametrize("mode", [PushMode.OPEN, PushMode.OBSERVE])
def test_a_team_that_takes_tokenless_pushes_stores_and_counts_them(
    app_client: TestClient, engine: Engine, store: TokenStore, mode: PushMode
) -> None:
    store.set_push_mode(ALPHA, mode)
    admin = admin_of(store)
    tokenless = 'cdrlog_tokenless_pushes_total{team="alpha"}'
    refused = 'cdrlog_pushes_refused_total{status="401",team="beta",url="team"}'
    before = sampled(app_client, admin, tokenless, refused)
    assert push(app_client, ALPHA, events(ALPHA, "s1")).status_code == 200
    assert push(app_client, ALPHA, events(ALPHA, "s2")[:1]).status_code == 200
    # Another team keeps the default: required.
    assert push(app_client, BETA, events(BETA, "s3")).status_code == 401
    assert journal(engine) == 4

    shown = app_client.get("/api/v1/push-auth", headers=admin).json()
    assert shown["default_mode"] == "required"
    [alpha] = shown["teams"]
    assert (alpha["team"], alpha["own_mode"], alpha["mode"]) == (ALPHA, mode.value, mode.value)
    assert alpha["push_tokens"] == 1
    assert alpha["tokenless_pushes"] == 4
    assert alpha["last_tokenless_at"] is not None

    after = sampled(app_client, admin, tokenless, refused)
    assert (after[0] - before[0], after[1] - before[1]) == (4, 1)


def sampled(client: TestClient, headers: dict[str, str], *names: str) -> list[float]:
    """The values of these samples in /metrics (counters are the process's, so tests
    compare before and after)."""
    lines = client.get("/metrics", headers=headers).text.splitlines()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line[:1] != "#"
    }
    return [values.get(name, 0.0) for name in names]


def test_a_presented_token_is_checked_whatever_the_mode(
    app_client: TestClient, engine: Engine, store: TokenStore
) -> None:
    store.set_push_mode(EVERY_TEAM, PushMode.OPEN)
    beta_pusher = store.create(TokenScope.PUSH, BETA).token
    wrong = push(app_client, ALPHA, events(ALPHA, "s1"), **bearer("cdrlog_" + "0" * 64))
    other_team = push(app_client, ALPHA, events(ALPHA, "s1"), **bearer(beta_pusher))
    assert (wrong.status_code, other_team.status_code) == (401, 403)
    assert journal(engine) == 0


def test_the_shared_url_checks_each_events_team(
    app_client: TestClient, engine: Engine, store: TokenStore
) -> None:
    store.set_push_mode(ALPHA, PushMode.OBSERVE)
    assert push(app_client, None, events(ALPHA, "s1")).status_code == 200
    # One event of a team that requires a token: nothing of the body is stored.
    mixed = push(app_client, None, events(ALPHA, "s2") + events(BETA, "s3"))
    assert mixed.status_code == 401
    assert mixed.json() == {"detail": "team 'beta' needs a push token"}
    assert journal(engine) == 3
    # With every team required, the shared URL refuses before reading the body.
    store.set_push_mode(ALPHA, None)
    assert push(app_client, None, events(ALPHA, "s4")).status_code == 401
    assert (journal(engine), letters(engine)) == (3, 0)


def test_a_tokenless_push_from_another_sites_page_is_refused(
    app_client: TestClient, engine: Engine, store: TokenStore
) -> None:
    store.set_push_mode(ALPHA, PushMode.OBSERVE)
    forged = push(
        app_client,
        ALPHA,
        events(ALPHA, "s1"),
        origin="https://evil.example",
        **{"sec-fetch-site": "cross-site"},
    )
    assert forged.status_code == 403
    assert journal(engine) == 0


def test_refusals_are_logged_once_a_minute_per_team_and_answer(
    app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdrlog.service.pushwatch"):
        for _ in range(5):
            assert push(app_client, BETA, events(BETA, "s1")).status_code == 401
        assert push(app_client, ALPHA, events(ALPHA, "s1")).status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "cdrlog.service.pushwatch"]
    assert len(lines) == 2, lines
    assert "push refused with 401" in lines[0]
    assert "team beta, team URL" in lines[0]
    assert "team alpha" in lines[1]


def test_the_first_token_of_a_rollout_starts_observing(engine: Engine) -> None:
    store = TokenStore(engine, utc_now, cache_seconds=0)
    first = store.create(TokenScope.PUSH, ALPHA, rollout=True)
    second = store.create(TokenScope.PUSH, BETA, rollout=True)
    assert (first.began_rollout, second.began_rollout) == (True, False)
    modes = store.push_modes()
    assert (modes.of(ALPHA), modes.of("anyone")) == (PushMode.OBSERVE, PushMode.OBSERVE)
    # Once the operator requires tokens, a later first-time team does not reopen them.
    store.set_push_mode(EVERY_TEAM, PushMode.REQUIRED)
    assert not store.create(TokenScope.PUSH, "gamma", rollout=True).began_rollout
    assert store.push_modes().of("gamma") is PushMode.REQUIRED


def test_a_mode_set_by_another_process_takes_effect_within_the_cache_time(
    settings: Settings, engine: Engine, store: TokenStore
) -> None:
    cached = settings.model_copy(update={"token_cache_seconds": 0.5})
    with TestClient(create_app(cached, engine)) as client:
        assert push(client, ALPHA, events(ALPHA, "s1")).status_code == 401
        # `cdrlog token mode alpha observe`, in another process: its own store.
        TokenStore(engine, utc_now).set_push_mode(ALPHA, PushMode.OBSERVE)
        deadline = time.monotonic() + 5
        while push(client, ALPHA, events(ALPHA, "s1")).status_code != 200:
            assert time.monotonic() < deadline, "the new mode never took effect"
            time.sleep(0.1)
