"""Everything a server with tokens exposes besides pushes and reads: metrics, the
dashboard's files and session, its database files, caching, undecodable input."""

from __future__ import annotations

import json
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cdrlog.web.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from system.conftest import FORM, Figures, Server, event_body, serving, watching

# Each measures the latency of ordinary pushes under abuse: nothing runs beside it.
pytestmark = pytest.mark.alone

LIMITED_PATHS = ("/", "/docs", "/openapi.json", "/static/app.js", "/metrics")
QUICK_REQUESTS = 200
# The normal pusher, 33 a second: within the low limits this test sets.
SLOW_PUSHES = 0.03


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[Server]:
    """Limits low enough to reach at once, yet above the normal pusher's pace here
    (its address and its token each have their own bucket)."""
    settings = {"CDRLOG_RATE_PER_SECOND": "60", "CDRLOG_RATE_BURST": "30"}
    with serving(tmp_path / "limited", tokens=True, settings=settings) as running:
        yield running


def test_metrics_need_a_token(token_server: Server, figures: Figures) -> None:
    admin = token_server.issued.admin
    with watching(token_server, figures) as watch, token_server.client() as client:
        anonymous = client.get("/metrics").status_code
        with_admin = client.get("/metrics", headers={"authorization": f"Bearer {admin}"})
    figures("anonymous_answer", anonymous)
    figures("admin_answer", with_admin.status_code)
    assert (anonymous, with_admin.status_code) == (401, 200)
    watch.assert_unharmed()


def _quickly(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


def test_rate_limits_cover_every_path(limited_server: Server, figures: Figures) -> None:
    admin = limited_server.issued.admin
    with limited_server.client(admin) as client:
        # A process's first /openapi.json builds the schema on the event loop (~0.1 s
        # here): a cost of its start, paid before the watch, not of this abuse.
        assert client.get("/openapi.json").status_code == 200
    with (
        watching(limited_server, figures, every=SLOW_PUSHES) as watch,
        limited_server.client(admin) as client,
    ):
        answers = {
            path: Counter(_quickly(client, path) for _ in range(QUICK_REQUESTS))
            for path in LIMITED_PATHS
        }
    for path, counted in answers.items():
        figures(f"answers_{path}", dict(counted))
    assert [path for path, counted in answers.items() if not counted[429]] == []
    watch.assert_unharmed()


def _signed_in(server: Server, token: str) -> dict[str, str]:
    """The session's cookies. They are `Secure`, which a client's jar keeps from plain
    http, so they are handed on by hand."""
    with server.client() as client:
        answer = client.post("/api/v1/session", json={"token": token})
    assert answer.status_code == 200, answer.text
    return {name: answer.cookies[name] for name in (SESSION_COOKIE, CSRF_COOKIE)}


def _signed_out(server: Server, cookies: dict[str, str], csrf: str) -> int:
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    with server.client() as client:
        headers = {"cookie": cookie, CSRF_HEADER: csrf}
        return client.delete("/api/v1/session", headers=headers).status_code


def test_csrf_token_is_bound_to_its_session(token_server: Server, figures: Figures) -> None:
    tokens = token_server.issued
    with watching(token_server, figures) as watch:
        # The victim's session (admin), and one the attacker made with its own token.
        victim = _signed_in(token_server, tokens.admin)
        attacker = _signed_in(token_server, tokens.read)
        answers = {
            "attackers_header": _signed_out(token_server, victim, attacker[CSRF_COOKIE]),
            # The attacker's CSRF cookie planted beside the victim's session (a sibling
            # subdomain can set cookies), and its header to match.
            "attackers_cookie_and_header": _signed_out(
                token_server,
                victim | {CSRF_COOKIE: attacker[CSRF_COOKIE]},
                attacker[CSRF_COOKIE],
            ),
            "own": _signed_out(token_server, victim, victim[CSRF_COOKIE]),
        }
    for name, status in answers.items():
        figures(f"{name}_answer", status)
    assert answers == {"attackers_header": 403, "attackers_cookie_and_header": 403, "own": 200}
    watch.assert_unharmed()


def test_database_files_are_private(token_server: Server, figures: Figures) -> None:
    with watching(token_server, figures) as watch:
        pass  # the normal pushes write, so the write-ahead log exists
    database = token_server.database
    # The -shm file holds only the write-ahead log's index, no call data.
    files = [database, database.with_name(f"{database.name}-wal")]
    if token_server.spool.is_dir():
        files += sorted(token_server.spool.iterdir())
    modes = {
        str(path.relative_to(database.parent)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in files
        if path.exists()
    }
    figures("file_modes", modes)
    assert database.name in modes
    assert {name: mode for name, mode in modes.items() if mode != "0o600"} == {}
    watch.assert_unharmed()


def test_cdr_answers_are_not_cached(token_server: Server, figures: Figures) -> None:
    read = token_server.issued.read
    with watching(token_server, figures) as watch, token_server.client(read) as client:
        answer = client.get("/api/v1/cdrs")
    caching = answer.headers.get("cache-control")
    figures("answer", answer.status_code)
    figures("cache_control", caching)
    assert answer.status_code == 200
    assert caching is not None
    assert "no-store" in caching
    watch.assert_unharmed()


def test_invalid_utf8_in_a_field_is_refused_and_kept(
    token_server: Server, figures: Figures
) -> None:
    tokens = token_server.issued
    body = event_body("invalid-utf8").replace("callerid=1", "callerid=%FF%FE")
    with watching(token_server, figures) as watch, token_server.client() as client:
        answer = client.post(f"/astercc/1/events?token={tokens.push}", content=body, headers=FORM)
        letters = client.get(
            "/api/v1/rejected",
            params={"limit": 100},
            headers={"authorization": f"Bearer {tokens.admin}"},
        )
    assert letters.status_code == 200, letters.text
    kept = [
        letter
        for letter in letters.json()["rejected"]
        if "invalid-utf8" in letter["body"] and "callerid" in json.dumps(letter["reason"])
    ]
    figures("answer", answer.status_code)
    figures("answer_names_callerid", "callerid" in answer.text)
    figures("dead_letters_kept", len(kept))
    assert answer.status_code == 400
    assert "callerid" in answer.text
    assert len(kept) == 1
    watch.assert_unharmed()
