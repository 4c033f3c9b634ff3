"""Many receivers behind a real nginx: the README's configuration, tested.

Three `cdrlog serve` processes share one MariaDB or PostgreSQL behind Debian's nginx,
configured from docs/nginx.conf.example: its upstream block (with the test's ports) and
every setting of its server block but listen, server_name and ssl_* (the test speaks
plain HTTP on a free port). 32 senders post the shuffled, 30%-duplicated events of 300
calls; round robin spreads each call's events over the receivers. Every CDR must be
exact, one per call, every receiver must have served, and most calls must have been
split between receivers. A second test checks the whole example (TLS too) with `nginx -t`.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cdrlog.sim.simulate import SendSettings, SendSummary, send_events
from cdrlog.sim.traffic import Delivery, delivery_order, generate_calls
from cdrlog.store.tables import call_event
from conftest import Backend, skip_unless_optional
from support.chaos import distinct_events, wrong_agents, wrong_cdrs
from support.nginx import EXAMPLE, nginx_binary, nginx_conf, proxy_settings, running_nginx
from support.servers import free_port, running_server

pytestmark = pytest.mark.slow

RECEIVERS = 3
CALLS = 100
SENDERS = 32
BEHIND_A_PROXY = ["--max-connections-per-address", "1024"]
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
LOGGED = re.compile(r'^(?P<upstream>\S+(?:, \S+)*) (?P<status>\d{3}) "(?P<body>.*)"$')


def served_by(access_log: Path) -> tuple[Counter[str], dict[str, set[str]], Counter[str]]:
    """Requests per receiver, the receivers of each sessionid, and answers by status."""
    per_receiver: Counter[str] = Counter()
    per_call: dict[str, set[str]] = defaultdict(set)
    statuses: Counter[str] = Counter()
    for line in access_log.read_text().splitlines():
        logged = LOGGED.match(line)
        assert logged is not None, f"unexpected access log line {line!r}"
        receiver = logged["upstream"].split(", ")[-1]  # the one that answered
        if logged["body"] in ("", "-"):
            continue  # the readiness probe
        per_receiver[receiver] += 1
        statuses[logged["status"]] += 1
        session = re.search(r"(?:^|&)sessionid=([^&]+)", logged["body"])
        if session is not None:  # an agent's event belongs to no call
            per_call[session[1]].add(receiver)
    return per_receiver, per_call, statuses


def _through_nginx(
    binary: str, database_url: str, directory: Path, events: list[Delivery]
) -> tuple[SendSummary, list[int]]:
    """Send `events` through nginx to RECEIVERS receivers; the summary and their ports."""
    with ExitStack() as stack:
        bases = [
            stack.enter_context(
                running_server(
                    database_url,
                    directory / f"receiver-{n}.log",
                    # As the example says: every connection is nginx's.
                    ["--spool-dir", str(directory / f"spool-{n}"), *BEHIND_A_PROXY],
                )
            )
            for n in range(RECEIVERS)
        ]
        ports = [int(base.rsplit(":", 1)[1]) for base in bases]
        listen = free_port()
        http = proxy_settings(EXAMPLE.read_text(), listen, ports)
        entry = stack.enter_context(running_nginx(binary, directory, http, listen))
        summary = asyncio.run(send_events(events, SendSettings(entry, concurrency=SENDERS)))
    print(
        f"through nginx: {summary.sent} events in {summary.elapsed_seconds:.1f} s, "
        f"p99 {summary.latency_p99_ms:.0f} ms"
    )
    return summary, ports


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_receivers_behind_nginx_give_exactly_the_expected_cdrs(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    binary = nginx_binary()
    rng = random.Random(20261126)
    calls = generate_calls(rng, START, calls=CALLS, teams=3, agents=8, time_format="mixed")
    events = delivery_order(calls, rng, duplicate_ratio=0.3, shuffle_ratio=1.0)

    summary, ports = _through_nginx(binary, backend.url, tmp_path, events)

    assert (summary.sent, summary.errors, summary.retries) == (len(events), (), 0)
    per_receiver, per_call, statuses = served_by(tmp_path / "access.log")
    assert statuses == Counter({"200": len(events)})
    assert sorted(per_receiver) == sorted(f"127.0.0.1:{port}" for port in ports)
    split = sum(1 for receivers in per_call.values() if len(receivers) > 1)
    assert split >= 0.9 * CALLS, f"only {split} of {CALLS} calls were split between receivers"
    with engine.connect() as connection:
        journaled = connection.execute(select(func.count()).select_from(call_event)).scalar_one()
    assert journaled == distinct_events(calls)
    assert wrong_cdrs(engine, calls) == []
    assert wrong_agents(engine, calls, datetime.now(UTC)) == []


def test_the_whole_example_is_valid_nginx(tmp_path: Path) -> None:
    binary = nginx_binary()
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_unless_optional(
            "openssl is missing (for a throwaway certificate): apt-get install openssl"
        )
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    # A throwaway self-signed certificate, for the example's placeholders.
    request = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    subprocess.run(
        [openssl, *request.split(), "-subj", "/CN=localhost", "-keyout", key, "-out", certificate],
        check=True,
        capture_output=True,
    )
    example = EXAMPLE.read_text()
    example = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {certificate};", example)
    example = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", example)
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, example))
    checked = subprocess.run(
        [binary, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
