"""`cdrlog token create|list|revoke` on every backend, and `cdrlog serve`'s refusal to
listen beyond loopback without a token (real processes, which must exit by themselves)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from cdrlog.cli.main import cli
from cdrlog.cli.tokens import refuse_open_network, tokenless_teams
from cdrlog.core.pushauth import EVERY_TEAM, PushMode, PushModes
from cdrlog.core.tokens import PREFIX, TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from conftest import Backend
from support.servers import free_port, running_server
from support.teams import call_events
from support.waiting import wait_until


def token_command(*arguments: str) -> Result:
    return CliRunner().invoke(cli, ["token", *arguments])


def created_token(url: str, *options: str) -> str:
    result = token_command("create", "--db", url, *options)
    assert result.exit_code == 0, result.output
    token: str = result.stdout.splitlines()[-1]
    return token


def test_a_token_is_created_listed_without_its_secret_and_revoked(
    backend: Backend, engine: Engine
) -> None:
    result = token_command("create", "--db", backend.url, "--scope", "push", "--team", "t7")
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[-1]
    assert token.startswith(PREFIX)
    assert token == result.stdout.strip()  # alone on stdout; the words go to stderr
    assert "shown only now" in result.stderr
    grant = TokenStore(engine, utc_now, 0).grant(token)
    assert grant is not None
    assert (grant.scope, grant.team) == (TokenScope.PUSH, "t7")

    listing = token_command("list", "--db", backend.url)
    assert listing.exit_code == 0, listing.output
    assert token not in listing.output
    assert token[len(PREFIX) + 6 :] not in listing.output
    [line] = [line for line in listing.output.splitlines() if token[: len(PREFIX) + 6] in line]
    assert "push" in line
    assert "t7" in line

    revoked = token_command("revoke", "--db", backend.url, str(grant.token_id))
    assert revoked.exit_code == 0, revoked.output
    assert TokenStore(engine, utc_now, 0).grant(token) is None
    again = token_command("revoke", "--db", backend.url, str(grant.token_id))
    assert again.exit_code == 1
    assert f"no active token {grant.token_id}" in again.output
    assert token_command("revoke", "--db", backend.url, "999999").exit_code == 1


def test_every_scope_can_be_created_and_only_admin_has_no_team(
    backend: Backend, engine: Engine
) -> None:
    store = TokenStore(engine, utc_now, 0)
    for options, scope, team in [
        (("--scope", "read", "--team", "t1"), TokenScope.READ, "t1"),
        (("--scope", "admin", "--note", "ops"), TokenScope.ADMIN, None),
    ]:
        grant = store.grant(created_token(backend.url, *options))
        assert grant is not None
        assert (grant.scope, grant.team) == (scope, team)
    assert [row["note"] for row in store.listing()] == [None, "ops"]


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (("--scope", "admin", "--team", "t1"), "drop --team"),
        (("--scope", "push"), "needs --team"),
        (("--scope", "read", "--team", ""), "needs --team"),
        (("--scope", "owner", "--team", "t1"), "owner"),
        ((), "--scope"),
    ],
)
def test_a_scope_and_team_that_do_not_fit_are_usage_errors(
    sqlite_url: str, options: tuple[str, ...], complaint: str
) -> None:
    result = token_command("create", "--db", sqlite_url, *options)
    assert result.exit_code == 2, result.output
    assert complaint in result.output
    engine = make_engine(sqlite_url)
    upgrade(engine)
    assert TokenStore(engine, utc_now).listing() == []
    engine.dispose()


# --- serve: open only on loopback ----------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    refuse_open_network(host, has_tokens=False, allow_open=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "cdr.example.com"])
def test_any_other_address_needs_a_token_or_allow_open(host: str) -> None:
    with pytest.raises(Exception, match="cdrlog token create"):
        refuse_open_network(host, has_tokens=False, allow_open=False)
    refuse_open_network(host, has_tokens=True, allow_open=False)
    refuse_open_network(host, has_tokens=False, allow_open=True)


def serve_command(url: str, spool: Path, *options: str) -> list[str]:
    """`cdrlog serve` on `url`, spooling into `spool` (not the working directory's)."""
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", url]
    return [*command, "--spool-dir", str(spool), *options]


@pytest.mark.slow
def test_serve_on_every_address_without_a_token_refuses_to_start(
    sqlite_url: str, tmp_path: Path
) -> None:
    options = ("--host", "0.0.0.0", "--port", str(free_port()))
    command = serve_command(sqlite_url, tmp_path / "spool", *options)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert "refusing to listen on 0.0.0.0 without any token" in finished.stderr
    assert "cdrlog token create --scope admin" in finished.stderr
    assert "--allow-open" in finished.stderr
    assert "push URL" not in finished.stdout


@pytest.mark.slow
def test_serve_on_every_address_starts_with_allow_open(sqlite_url: str, tmp_path: Path) -> None:
    every_address = ("--host", "0.0.0.0", "--allow-open")
    with running_server(sqlite_url, tmp_path / "open.log", every_address) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/api/v1/cdrs").status_code == 200
    assert "Uvicorn running on http://0.0.0.0:" in (tmp_path / "open.log").read_text()


@pytest.mark.slow
def test_serve_on_every_address_starts_with_a_token_and_enforces_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    token = created_token(sqlite_url, "--scope", "admin")
    with running_server(sqlite_url, tmp_path / "secured.log", ("--host", "0.0.0.0")) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/api/v1/cdrs").status_code == 401
        assert httpx.get(f"{base}/api/v1/cdrs", params={"token": token}).status_code == 200


@pytest.mark.slow
def test_serve_on_loopback_starts_without_a_token(sqlite_url: str, tmp_path: Path) -> None:
    with running_server(sqlite_url, tmp_path / "loopback.log") as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/api/v1/session").json()["required"] is False


@pytest.mark.slow
def test_revoking_the_last_token_does_not_open_a_server_on_every_address(
    sqlite_url: str, tmp_path: Path
) -> None:
    token = created_token(sqlite_url, "--scope", "admin")
    with running_server(sqlite_url, tmp_path / "revoked.log", ("--host", "0.0.0.0")) as base:
        assert httpx.get(f"{base}/api/v1/cdrs").status_code == 401
        assert token_command("revoke", "--db", sqlite_url, "1").exit_code == 0

        def revocation_seen() -> bool:
            # The server reads its tokens again within its cache time (two seconds):
            # once the revoked token is refused, it has seen that no token is left.
            answer = httpx.get(f"{base}/api/v1/cdrs", params={"token": token})
            return answer.status_code == 401

        wait_until(revocation_seen, what="the revoked token refused")
        # With no token left, a server on every address stays closed rather than open.
        refused = httpx.get(f"{base}/api/v1/cdrs")
        assert refused.status_code == 401
        assert "no token exists" in refused.json()["detail"]
        assert httpx.post(f"{base}/astercc/t1/events", json=[]).status_code == 401


@pytest.mark.slow
def test_the_readmes_rollout_loses_no_push(sqlite_url: str, tmp_path: Path) -> None:
    """README "Turn tokens on without losing a call": a serving install gets its first
    token while asterCC pushes without one; nothing is refused until the operator
    requires tokens, and `token list` shows who still pushes without one."""
    answers: list[int] = []

    def call(base: str, number: int, token: str | None = None) -> None:
        for event in call_events("team1", f"rollout-{number}", "1001", datetime(2024, 3, 5, 9)):
            params = {"token": token} if token else {}
            answer = httpx.post(f"{base}/astercc/team1/events", data=event, params=params)
            answers.append(answer.status_code)

    with running_server(sqlite_url, tmp_path / "rollout.log") as base:
        call(base, 1)
        created = token_command("create", "--db", sqlite_url, "--scope", "push", "--team", "team1")
        assert created.exit_code == 0, created.output
        token = created.stdout.strip()
        assert "observe" in created.stderr
        assert f"/astercc/team1/events?token={token}" in created.stderr
        for number in range(2, 6):  # across the server's token cache time and beyond
            call(base, number)
            time.sleep(0.6)
        assert set(answers) == {200}, answers

        def counted() -> bool:
            # Counted once the server has read the new token (within its cache time),
            # and written within seconds.
            listed = token_command("list", "--db", sqlite_url).output.splitlines()
            [row] = [line for line in listed if line.startswith("│ team1") and "observe" in line]
            return row.split("│")[4].strip() not in ("", "0")

        wait_until(counted, what="the tokenless pushes counted in `token list`")

        call(base, 6, token)  # asterCC now uses the URL with the token
        assert token_command("mode", "--db", sqlite_url, "team1", "required").exit_code == 0

        def tokenless_refused() -> bool:
            answer = httpx.post(f"{base}/astercc/team1/events", data={"event": "x"})
            return answer.status_code == 401

        wait_until(tokenless_refused, what="tokenless pushes refused")
        answers.clear()
        call(base, 7, token)
        assert set(answers) == {200}
        admin = admin_token(sqlite_url)
        cdrs = httpx.get(f"{base}/api/v1/cdrs", params={"token": admin})
        assert cdrs.json()["total"] == 7

        # `simulate --token` checks a secured setup; without one every push is refused.
        played = ["simulate", "--url", base, "--calls", "3", "--quiet", "--seed", "5"]
        secured = CliRunner().invoke(cli, [*played, "--token", admin])
        assert secured.exit_code == 0, secured.output
        assert "CDRs          3 of 3 as expected" in secured.output, secured.output
        refused = CliRunner().invoke(cli, [*played, "--no-check"])
        assert refused.exit_code == 1, refused.output
    log = (tmp_path / "rollout.log").read_text()
    assert "push refused with 401" in log


def admin_token(url: str) -> str:
    return created_token(url, "--scope", "admin")


@pytest.mark.parametrize(
    ("modes", "said"),
    [
        (PushModes({}, False), None),
        (PushModes({}, True), None),
        (PushModes({EVERY_TEAM: PushMode.REQUIRED}, True), None),
        (
            PushModes({EVERY_TEAM: PushMode.OBSERVE, "t2": PushMode.OPEN}, True),
            "every team without its own mode (observe), team t2 (open)",
        ),
        (
            PushModes({EVERY_TEAM: PushMode.REQUIRED, "t1": PushMode.OBSERVE}, True),
            "team t1 (observe)",
        ),
    ],
)
def test_serve_names_the_teams_that_push_without_a_token(
    modes: PushModes, said: str | None
) -> None:
    assert tokenless_teams(modes) == said
