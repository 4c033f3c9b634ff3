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
import os
import random
import re
import shutil
import signal
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from cdrlog.sim.simulate import SendSettings, SendSummary, send_events
from cdrlog.sim.traffic import Delivery, delivery_order, generate_calls
from cdrlog.store.tables import call_event
from conftest import Backend, skip_unless_optional
from support.chaos import distinct_events, wrong_agents, wrong_cdrs
from support.servers import free_port, running_server, wait_until_healthy

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "nginx.conf.example"
RECEIVERS = 3
CALLS = 150
SENDERS = 32
BEHIND_A_PROXY = ["--max-connections-per-address", "1024"]
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
# Lines of the example's server block that are about the public face, not the proxying.
PUBLIC_ONLY = re.compile(r"^\s*(listen|server_name|ssl_\w+)\s")
# What the test's access log says of each request: which receiver, its answer, its body.
LOG_FORMAT = "log_format receivers '$upstream_addr $status \"$request_body\"';"
LOGGED = re.compile(r'^(?P<upstream>\S+(?:, \S+)*) (?P<status>\d{3}) "(?P<body>.*)"$')


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        skip_unless_optional("nginx is missing: apt-get install nginx-light")
    return found


def block(text: str, header: str) -> tuple[str, str]:
    """The first block whose opening line matches `header`: (its header, its body)."""
    opening = re.search(rf"^[ \t]*{header}[ \t]*\{{[ \t]*$", text, re.MULTILINE)
    if opening is None:
        raise AssertionError(f"{EXAMPLE.name} has no block matching {header!r}")
    depth, position = 1, opening.end()
    while depth:
        brace = re.compile(r"[{}]").search(text, position)
        if brace is None:
            raise AssertionError(f"{EXAMPLE.name}: unbalanced braces after {header!r}")
        depth += 1 if brace.group() == "{" else -1
        position = brace.end()
    return opening.group().strip(), text[opening.end() : position - 1]


def without_comments(text: str) -> str:
    return re.sub(r"#.*$", "", text, flags=re.MULTILINE)


def proxy_settings(example: str, listen_port: int, receiver_ports: list[int]) -> str:
    """The example's upstream and server blocks, pointed at the test's receivers."""
    text = without_comments(example)
    upstream_header, upstream = block(text, r"upstream\s+\w+")
    kept = [line for line in upstream.splitlines() if not re.match(r"^\s*(server\s|$)", line)]
    servers = [f"    server 127.0.0.1:{port};" for port in receiver_ports]
    _, server = block(text, r"server")
    settings = [
        line for line in server.splitlines() if line.strip() and not PUBLIC_ONLY.match(line)
    ]
    return "\n".join(
        [
            upstream_header,
            *servers,
            *kept,
            "}",
            "server {",
            f"    listen 127.0.0.1:{listen_port};",
            *settings,
            "}",
        ]
    )


def nginx_conf(directory: Path, http: str) -> str:
    """A whole nginx.conf whose every file lives in `directory`; `http` goes inside http."""
    # pytest's directories are private to their owner: nginx's workers must run as it.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} notice;
events {{ worker_connections 512; }}
http {{
    {LOG_FORMAT}
    access_log {directory / "access.log"} receivers;
{temp}
{http}
}}
"""


@contextmanager
def running_nginx(binary: str, directory: Path, http: str, port: int) -> Iterator[str]:
    """nginx in the foreground on `port` with `http` as its http block; its base URL."""
    conf = directory / "nginx.conf"
    conf.write_text(nginx_conf(directory, http))
    command = [binary, "-c", str(conf), "-p", str(directory), "-e", str(directory / "error.log")]
    with (directory / "nginx.out").open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, lambda: _nginx_said(directory), 20, "nginx")
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: answers in flight are finished
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _nginx_said(directory: Path) -> str:
    logs = (directory / "nginx.out", directory / "error.log")
    return "\n".join(log.read_text() for log in logs if log.exists())


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
