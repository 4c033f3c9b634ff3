"""Real `cdrlog serve` processes (on loopback unless a test asks), for end-to-end tests."""

from __future__ import annotations

import ipaddress
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(
    database_url: str,
    log: Path,
    extra: Sequence[str] = (),
    timeout: float = 30.0,
    open_files: int | None = None,
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Start `cdrlog serve` on a free port; yields its base URL; stops it afterwards.
    With `open_files`, the server may hold at most that many file descriptors. With
    `host` 0.0.0.0 it listens on every address; the URL yielded is still loopback's.

    Unless `extra` names a `--spool-dir`, the server spools into a new directory of its
    own beside `log`, not the working directory's `cdrlog-spool`: shared, one test's
    spooled events could be drained into another test's database."""
    port = free_port()
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", database_url]
    command += ["--host", host, "--port", str(port)]
    if not names_spool_dir(extra):
        spool = tempfile.mkdtemp(prefix=f"{log.stem}-spool-", dir=log.parent)
        command += ["--spool-dir", spool]
    command += extra
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            preexec_fn=None if open_files is None else _limit_open_files(open_files),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, log.read_text, timeout)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def names_spool_dir(options: Sequence[str]) -> bool:
    """Whether `cdrlog serve` options choose the spool directory themselves."""
    return any(o == "--spool-dir" or o.startswith("--spool-dir=") for o in options)


def _limit_open_files(most: int) -> Callable[[], None]:
    def limit() -> None:  # runs in the child, before it executes the server
        resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))

    return limit


@contextmanager
def running_servers(
    database_url: str,
    logs: Path,
    count: int,
    extra: Sequence[str] = (),
    each: Sequence[Sequence[str]] = (),
) -> Iterator[list[str]]:
    """`count` servers on one database, each started with `extra` (and server n with
    `each[n]` too, where given); yields their URLs."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running_server(
                    database_url,
                    logs / f"server-{n}.log",
                    [*extra, *(each[n] if n < len(each) else ())],
                )
            )
            for n in range(count)
        ]


def wait_until_healthy(
    base: str,
    process: subprocess.Popen[bytes],
    said: Callable[[], str],
    timeout: float = 30.0,
    what: str = "cdrlog serve",
) -> None:
    """Until `base` answers /healthz with 200; fails with what the process `said` if it
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{said()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer /healthz within {timeout:g} s:\n{said()}")


def lan_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, as a colleague's browser
    would reach it; None where there is none. Connecting a UDP socket sends nothing: it
    only picks the address a route to a documentation network (TEST-NET-1) leaves from."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            found.append(probe.getsockname()[0])
        except OSError:
            pass  # no route: the host name may still name an address
    try:
        named = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        found += [str(info[4][0]) for info in named]
    except OSError:
        pass
    for candidate in found:
        address = ipaddress.ip_address(candidate)
        if not (address.is_loopback or address.is_unspecified or address.is_link_local):
            return candidate
    return None
