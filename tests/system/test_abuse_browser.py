"""Open mode (no tokens) serves loopback, and so any web page the operator's browser
opens: a page may post a form anywhere, and DNS rebinding makes its own host name
point at 127.0.0.1. Neither may push or read."""

from __future__ import annotations

import httpx
import pytest

from system.conftest import FORM, Figures, Server, event_body, watching

# Each measures the latency of ordinary pushes under abuse: nothing runs beside it.
pytestmark = pytest.mark.alone


def _journaled(client: httpx.Client, sessionid: str) -> int:
    answer = client.get("/api/v1/events", params={"sessionid": sessionid})
    assert answer.status_code == 200, answer.text
    return len(answer.json()["events"])


def test_open_mode_refuses_pushes_from_other_sites_pages(
    shared_server: Server, figures: Figures
) -> None:
    senders = {
        "evil_origin": {"origin": "http://evil.example"},
        "cross_site_fetch": {"sec-fetch-site": "cross-site"},
        # asterCC posts server to server: no Origin, no Sec-Fetch-* headers.
        "astercc": {},
    }
    outcomes: dict[str, tuple[int, int]] = {}
    with watching(shared_server, figures) as watch, shared_server.client() as client:
        for sender, headers in senders.items():
            sessionid = f"browser-{sender}"
            answer = client.post(
                "/astercc/1/events", content=event_body(sessionid), headers=FORM | headers
            )
            outcomes[sender] = (answer.status_code, _journaled(client, sessionid))
    for sender, (status, stored) in outcomes.items():
        figures(f"{sender}_answer", status)
        figures(f"{sender}_events_stored", stored)
    assert outcomes == {"evil_origin": (403, 0), "cross_site_fetch": (403, 0), "astercc": (200, 1)}
    watch.assert_unharmed()


def test_open_mode_refuses_host_names_it_was_not_given(
    shared_server: Server, figures: Figures
) -> None:
    port = shared_server.port
    hosts = {
        "rebound_name": "rebind.attacker.example",
        "address": f"127.0.0.1:{port}",
        "localhost": f"localhost:{port}",
    }
    with watching(shared_server, figures) as watch, shared_server.client() as client:
        answers = {
            name: client.get("/api/v1/cdrs", headers={"host": host}).status_code
            for name, host in hosts.items()
        }
    for name, status in answers.items():
        figures(f"{name}_answer", status)
    assert answers == {"rebound_name": 403, "address": 200, "localhost": 200}
    watch.assert_unharmed()
