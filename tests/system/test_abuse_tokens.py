"""Tokens never leave the server: not into its log, not back in an error answer, not
into a redirect's Location."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict

import pytest

from system.conftest import FORM, Figures, Server, event_body, watching

# Each measures the latency of ordinary pushes under abuse: nothing runs beside it.
pytestmark = pytest.mark.alone

LOG_WAIT = 5.0


def _log_through(server: Server, mark: str) -> str:
    """The server's log once it holds `mark` (or after LOG_WAIT)."""
    give_up = time.monotonic() + LOG_WAIT
    logged = server.log.read_text(errors="replace")
    while mark not in logged and time.monotonic() < give_up:
        time.sleep(0.05)
        logged = server.log.read_text(errors="replace")
    return logged


def test_tokens_in_mis_encoded_query_strings_stay_out_of_the_log(
    token_server: Server, figures: Figures
) -> None:
    tokens = token_server.issued
    # The name `token` spelt so that a redaction matching `token=` misses it: the `=`
    # percent-encoded, and a letter encoded twice.
    queries = {
        "encoded_equals": f"token%3D{tokens.push}",
        "encoded_twice": f"tok%2565n={tokens.push}",
    }
    mark = f"mark-{uuid.uuid4().hex}"
    with watching(token_server, figures) as watch, token_server.client() as client:
        answers = {
            name: client.post(
                f"/astercc/1/events?{query}", content=event_body(f"log-{name}"), headers=FORM
            ).status_code
            for name, query in queries.items()
        }
        # The access log writes lines in order: once this one is there, so are those.
        client.get(f"/healthz?{mark}")
    logged = _log_through(token_server, mark)
    leaked = [scope for scope, token in asdict(tokens).items() if token in logged]
    for name, status in answers.items():
        figures(f"{name}_answer", status)
    figures("access_logged", mark in logged)
    figures("tokens_in_log", leaked)
    assert mark in logged, "the access log (--access-log) wrote nothing"
    assert leaked == []
    watch.assert_unharmed()


def test_sign_in_errors_never_echo_the_token(token_server: Server, figures: Figures) -> None:
    admin = token_server.issued.admin
    bodies = {
        "extra_field": (json.dumps({"token": admin, "extra": [1]}), "application/json"),
        "number_as_token": (json.dumps({"token": 12345}), "application/json"),
        "token_in_a_list": (json.dumps({"token": [admin]}), "application/json"),
        "token_misnamed": (json.dumps({"tok": admin}), "application/json"),
        "unterminated_json": (f'{{"token": "{admin}"', "application/json"),
        "plain_text": (admin, "text/plain"),
    }
    with watching(token_server, figures) as watch, token_server.client() as client:
        answers = {
            name: client.post(
                "/api/v1/session", content=body, headers={"content-type": content_type}
            )
            for name, (body, content_type) in bodies.items()
        }
    # A sign-in that succeeds puts the token in its session cookie, by design: what
    # must not carry it is the answer's body and every other header.
    echoed = {
        name: admin in answer.text
        or any(admin in value for key, value in answer.headers.items() if key != "set-cookie")
        for name, answer in answers.items()
    }
    for name, answer in answers.items():
        figures(f"{name}_answer", answer.status_code)
        figures(f"{name}_echoes_token", echoed[name])
    assert [name for name, answer in answers.items() if answer.status_code >= 500] == []
    assert [name for name, echoes in echoed.items() if echoes] == []
    watch.assert_unharmed()


def test_a_push_url_with_a_trailing_slash_is_answered_not_redirected(
    token_server: Server, figures: Figures
) -> None:
    push = token_server.issued.push
    with watching(token_server, figures) as watch, token_server.client() as client:
        answer = client.post(
            f"/astercc/1/events/?token={push}", content=event_body("trailing-slash"), headers=FORM
        )
    location = answer.headers.get("location")
    figures("answer", answer.status_code)
    figures("has_location", location is not None)
    figures("location_carries_token", location is not None and push in location)
    assert 200 <= answer.status_code < 300
    assert location is None
    watch.assert_unharmed()
