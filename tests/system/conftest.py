"""A real `cdrlog serve` to abuse, and what each abuse costs it.

Each server is a subprocess on loopback, started without the caller's CDRLOG_*
settings; PYTHONPATH passes through, so a run can point the server at another
checkout's code. While a test abuses it, `watching` measures the two things an abuse
must not take from asterCC: the server's memory (its peak resident size, from
/proc) and the latency of an ordinary push sent alongside every 5 ms from another
loopback address, as the call center's own traffic would be.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine
from support.servers import free_port, wait_until_healthy

KiB = 1024
MiB = 1024 * KiB
FORM = {"content-type": "application/x-www-form-urlencoded"}
# Generous for one request, short enough that a server that hangs fails the test in
# seconds rather than holding the suite.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# The answer's start kept for checks; the rest is only counted.
KEPT = MiB

# What every test holds the server to while it is abused.
MAX_MEMORY_GROWTH_MIB = 50.0
MAX_NORMAL_P99_SECONDS = 0.050

NORMAL_SOURCE = "127.0.0.2"
NORMAL_EVERY = 0.005
NORMAL_TIMEOUT = 5.0
# A p99 of a handful of pushes says nothing: after a quick abuse the pusher goes on
# to this many, for a few seconds at most. Of 200, the p99 (nearest rank) lets two be
# late, as a p99 means to: one fsync stall on a busy machine must not decide the test.
NORMAL_AT_LEAST = 200
NORMAL_GRACE = 3.0


def event_fields(sessionid: str, **changes: str) -> dict[str, str]:
    """An ordinary inbound `incoming` event of team 1, with `changes`."""
    fields = {
        "sessionid": sessionid,
        "source": "CALLER",
        "event": "incoming",
        "calltype": "dialin",
        "eventTime": "2026-11-26 09:00:00",
        "callerid": "1",
        "AgentTeamId": "1",
    }
    return fields | changes


def event_body(sessionid: str, **changes: str) -> str:
    """The event of `event_fields` form-encoded, as asterCC posts it."""
    return urlencode(event_fields(sessionid, **changes))


@dataclass(frozen=True, slots=True)
class Tokens:
    admin: str
    push: str  # team 1
    read: str  # team 1


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status (0 when none did), the size and start of the body."""

    status: int
    size: int
    start: bytes
    headers: httpx.Headers
    seconds: float
    error: str | None = None

    @property
    def text(self) -> str:
        return self.start.decode("utf-8", errors="replace")

    def shown(self) -> str:
        if self.error:
            return f"{self.status or 'no answer'} ({self.error} after {self.seconds:.2f} s)"
        return str(self.status)


def fetch(
    client: httpx.Client, method: str, url: str, *, within: float = 20.0, **request: Any
) -> Answer:
    """One request whose answer is counted as it streams, whatever its size; transport
    errors and answers still arriving after `within` seconds are reported, not raised."""
    began = time.perf_counter()
    start = bytearray()
    size = 0
    stopped: str | None = None
    try:
        with client.stream(method, url, **request) as answer:
            for chunk in answer.iter_bytes():
                size += len(chunk)
                if len(start) < KEPT:
                    start += chunk[: KEPT - len(start)]
                if time.perf_counter() - began > within:
                    stopped = f"stopped reading at {size} bytes"
                    break
            seconds = time.perf_counter() - began
            return Answer(answer.status_code, size, bytes(start), answer.headers, seconds, stopped)
    except httpx.TransportError as error:
        seconds = time.perf_counter() - began
        return Answer(0, size, bytes(start), httpx.Headers(), seconds, type(error).__name__)


class Server:
    """A running `cdrlog serve`: where it listens, its process and its log."""

    def __init__(
        self, port: int, pid: int, log: Path, database: Path, spool: Path, tokens: Tokens | None
    ) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.pid = pid
        self.log = log
        self.database = database
        self.spool = spool
        self.tokens = tokens
        self._resident_at_start = self._status_kib("VmRSS")

    @property
    def issued(self) -> Tokens:
        assert self.tokens is not None, "this server was started without tokens"
        return self.tokens

    def client(self, token: str | None = None, timeout: httpx.Timeout = TIMEOUT) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, timeout=timeout, headers=headers)

    def reset_peak_memory(self) -> None:
        """Measure growth from now on."""
        # "5" resets the kernel's peak resident size to the current one (Linux 4.0+);
        # where that is refused the peak includes start-up, which only overstates.
        with suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self._resident_at_start = self._status_kib("VmRSS")

    def peak_memory_growth(self) -> float:
        """MiB by which the process's peak resident size exceeds its size at the reset."""
        return (self._status_kib("VmHWM") - self._resident_at_start) / KiB

    def _status_kib(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
        raise LookupError(f"{name} is not in /proc/{self.pid}/status")


def _environment(settings: Mapping[str, str]) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    # Access log lines go to stdout, which a file would otherwise buffer until exit.
    environment["PYTHONUNBUFFERED"] = "1"
    return environment | dict(settings)


def _create_tokens(url: str, environment: Mapping[str, str]) -> Tokens:
    # The database is made by the CLI, as an operator's is, so its file is whatever
    # cdrlog makes it; the tokens then only add rows.
    command = [sys.executable, "-m", "cdrlog", "db", "upgrade", "--db", url]
    made = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    if made.returncode:
        raise RuntimeError(f"cdrlog db upgrade exited with {made.returncode}:\n{made.stderr}")
    engine = make_engine(url)
    try:
        store = TokenStore(engine, utc_now)
        return Tokens(
            admin=store.create(TokenScope.ADMIN, None).token,
            push=store.create(TokenScope.PUSH, "1").token,
            read=store.create(TokenScope.READ, "1").token,
        )
    finally:
        engine.dispose()


@contextmanager
def serving(
    directory: Path,
    *,
    tokens: bool = False,
    options: Sequence[str] = (),
    settings: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`cdrlog serve` on SQLite in `directory`; with `tokens`, an admin token and team 1's
    push and read tokens exist before it starts. Killed on leaving, however hurt."""
    directory.mkdir(parents=True, exist_ok=True)
    database, spool, log = directory / "cdrlog.db", directory / "spool", directory / "server.log"
    url = f"sqlite:///{database}"
    environment = _environment(settings or {})
    made = _create_tokens(url, environment) if tokens else None
    port = free_port()
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", url, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--spool-dir", str(spool), *options]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=directory
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log.read_text)
        yield Server(port, process.pid, log, database, spool, made)
    finally:
        process.terminate()
        try:
            # A server still busy with an abuse may not finish its answers: no waiting.
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Pushed:
    """The normal pushes' latencies (seconds) and what went wrong with any of them."""

    latencies: list[float] = field(default_factory=list, repr=False)
    failures: list[str] = field(default_factory=list, repr=False)

    def quantile(self, share: float) -> float:
        """Nearest rank: the latency `share` of the pushes took at most."""
        if not self.latencies:
            return math.inf
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class NormalPusher:
    """While it runs, an ordinary event every 5 ms to `/astercc/1/events`, from
    127.0.0.2 so the server's per-address limits treat it as another sender.

    It pushes from a process of its own: in a thread, it would wait for this process's
    interpreter lock while the abuse's threads hold it, and count that as latency."""

    def __init__(self, base: str, token: str | None, every: float = NORMAL_EVERY) -> None:
        path = f"/astercc/1/events?token={token}" if token else "/astercc/1/events"
        self.grace = max(NORMAL_GRACE, every * NORMAL_AT_LEAST)
        self.pushed = Pushed()
        # Forked, not spawned: the pusher starts at once, with what is imported here.
        context = multiprocessing.get_context("fork")
        self._warm = context.Event()
        self._stop = context.Event()
        self._results, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_push_normally,
            args=(base, path, every, self.grace, self._warm, self._stop, sending),
            name="normal-pusher",
            daemon=True,
        )

    def __enter__(self) -> NormalPusher:
        self._process.start()
        self._warm.wait(NORMAL_TIMEOUT)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._results.poll(self.grace + NORMAL_TIMEOUT + 1):
            latencies, failures = self._results.recv()
            self.pushed.latencies.extend(latencies)
            self.pushed.failures.extend(failures)
        else:
            self.pushed.failures.append("the pusher did not report")
        self._process.join(1)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _push_normally(
    base: str,
    path: str,
    every: float,
    grace: float,
    warm: Event,
    stop: Event,
    results: Connection,
) -> None:
    """The pusher's process: push until `stop` (and at least NORMAL_AT_LEAST times, for
    a while), then send the latencies and failures through `results`."""
    pushed = Pushed()
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    transport = httpx.HTTPTransport(local_address=NORMAL_SOURCE)
    timeout = httpx.Timeout(NORMAL_TIMEOUT)
    with httpx.Client(base_url=base, transport=transport, timeout=timeout) as client:
        # Not counted: a new connection, and a server's first event, cost what no
        # abuse does.
        with suppress(httpx.TransportError):
            client.post(path, content=event_body(f"normal-{tag}-0"), headers=FORM)
        warm.set()
        due = time.monotonic()
        stopped_at = math.inf
        while True:
            if stop.is_set():
                stopped_at = min(stopped_at, time.monotonic())
                enough = len(pushed.latencies) >= NORMAL_AT_LEAST
                if enough or time.monotonic() > stopped_at + grace:
                    break
            body = event_body(f"normal-{tag}-{len(pushed.latencies) + 1}")
            began = time.perf_counter()
            try:
                status = client.post(path, content=body, headers=FORM).status_code
                failure = None if 200 <= status < 300 else str(status)
            except httpx.TransportError as error:
                failure = type(error).__name__
            pushed.latencies.append(time.perf_counter() - began)
            if failure:
                pushed.failures.append(failure)
            # A late push delays the next one; the missed ones are not sent in a burst.
            due = max(due + every, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))
    results.send((pushed.latencies, pushed.failures))


class Figures:
    """Measurements of one test: recorded as its properties (JUnit XML) and printed."""

    def __init__(self, test: str, record: Callable[[str, object], None]) -> None:
        self.test = test
        self._record = record

    def __call__(self, name: str, value: object) -> None:
        shown = round(value, 3) if isinstance(value, float) else value
        self._record(name, shown)
        print(f"[{self.test}] {name} = {shown}")


@dataclass
class Watch:
    """What an abuse cost; complete once `watching` has ended."""

    pushed: Pushed
    memory_growth_mib: float = math.nan

    def assert_unharmed(self) -> None:
        assert self.memory_growth_mib < MAX_MEMORY_GROWTH_MIB, (
            f"memory grew {self.memory_growth_mib:.1f} MiB"
        )
        p99 = self.pushed.quantile(0.99)
        assert p99 < MAX_NORMAL_P99_SECONDS, f"normal pushes' p99 was {p99 * 1000:.1f} ms"
        assert not self.pushed.failures, f"normal pushes failed: {self.pushed.failures[:10]}"


@contextmanager
def watching(server: Server, figures: Figures, every: float = NORMAL_EVERY) -> Iterator[Watch]:
    """Measure the server's memory and the normal pushes' latency while the body runs;
    the figures are recorded even when the body fails."""
    server.reset_peak_memory()
    pusher = NormalPusher(server.base, server.tokens.push if server.tokens else None, every)
    watch = Watch(pusher.pushed)
    try:
        with pusher:
            yield watch
    finally:
        try:
            watch.memory_growth_mib = server.peak_memory_growth()
        except (OSError, LookupError):
            figures("server", "exited")  # its /proc entry is gone: growth stays unknown
        pushed = watch.pushed
        figures("memory_growth_mib", watch.memory_growth_mib)
        figures("normal_pushes", len(pushed.latencies))
        figures("normal_p50_ms", pushed.quantile(0.50) * 1000)
        figures("normal_p99_ms", pushed.quantile(0.99) * 1000)
        # One late push fails a p99 of a few dozen; this tells one from many.
        over = sum(latency >= MAX_NORMAL_P99_SECONDS for latency in pushed.latencies)
        figures("normal_over_50ms", over)
        figures("normal_failures", len(pushed.failures))


@pytest.fixture
def figures(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> Figures:
    return Figures(request.node.name, record_property)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh open-mode server (no tokens), for one abuse that may leave it hurt."""
    with serving(tmp_path / "server") as running:
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open-mode server shared by a module's light probes."""
    with serving(tmp_path_factory.mktemp("shared")) as running:
        yield running


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with tokens, shared by a module; its access log is on, as an operator
    may turn it on, so that a token it leaks into a log line shows."""
    directory = tmp_path_factory.mktemp("tokens")
    with serving(directory, tokens=True, options=["--access-log"]) as running:
        yield running
