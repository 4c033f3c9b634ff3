"""A real nginx in front of several `cdrlog serve` processes, configured from the
README's docs/nginx.conf.example: its upstream block (with the test's ports) and every
setting of its server block but listen, server_name and ssl_*."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import skip_unless_optional
from support.servers import wait_until_healthy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "nginx.conf.example"
# Lines of the example's server block that are about the public face, not the proxying.
PUBLIC_ONLY = re.compile(r"^\s*(listen|server_name|ssl_\w+)\s")
# What the access log says of each request: which receiver, its answer, its body.
LOG_FORMAT = "log_format receivers '$upstream_addr $status \"$request_body\"';"


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
