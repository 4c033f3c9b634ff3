"""Hooks benchmark: what the outbox costs ingest, and how fast deliveries go out.

For each backend, `cdrlog serve` takes as much traffic as `--connections` senders can
push for about `--seconds`, twice on a fresh schema: without any hook, then with one
hook that takes every kind of CDR change (the most the outbox is ever written) and
sends it to a local receiver (`hook_receiver.py`, which answers 204 at once). The
events/s of the two runs and their ratio show the outbox's cost. Then the deliveries
are waited for: the delivery rate is the deliveries received over the time from the
first to the last, and every CDR's last version must have arrived.

    .venv/bin/python scripts/bench_hooks.py --seconds 20 --backends sqlite,mariadb,postgresql
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_push import (
    DEFAULT_URLS,
    backend_url,
    free_port,
    meter,
    reset_schema,
    serving,
    unreachable,
)
from push_client import Load, Source, build_traffic, load
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from cdrlog.core.hooks import CDR_KINDS, Kind
from cdrlog.service.clock import utc_now
from cdrlog.store import hooks
from cdrlog.store.database import make_engine
from cdrlog.store.tables import cdr, hook_delivery, outbox

SCRIPTS = Path(__file__).resolve().parent
HOST = "127.0.0.1"


@dataclass
class Measured:
    backend: str
    without: Load
    with_hook: Load
    cdrs: int
    deliveries: int
    distinct: int
    delivery_seconds: float
    complete: bool

    @property
    def ratio(self) -> float:
        return self.with_hook.per_second / self.without.per_second

    @property
    def delivery_rate(self) -> float:
        return self.deliveries / self.delivery_seconds if self.delivery_seconds else 0.0


def serve_command(url: str, port: int, spool: Path) -> list[str]:
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", url, "--host", HOST]
    return [*command, "--port", str(port), "--spool-dir", str(spool), "--allow-private-targets"]


def receiver_command(port: int) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "hook_receiver:app", "--app-dir", str(SCRIPTS)]
    return [*command, "--host", HOST, "--port", str(port), "--no-access-log"]


def one_run(
    name: str,
    url: str,
    options: argparse.Namespace,
    logs: Path,
    hooked: str | None,
    then: Callable[[], None] = lambda: None,
) -> Load:
    """Reset the schema, subscribe `hooked` (a target) if given, push flat out, and
    `then` (while the server still runs)."""
    reset_schema(url)
    if hooked is not None:
        engine = make_engine(url)
        kinds = tuple(kind for kind in Kind if kind in CDR_KINDS)
        hooks.add(engine, None, hooked, kinds, "whsec_" + "A" * 32, utc_now(), "bench")
        engine.dispose()
    port = free_port()
    label = f"{name}-{'hook' if hooked else 'plain'}"
    command = serve_command(url, port, logs / f"spool-{label}")
    with serving(command, port, logs / f"{label}.log") as server:
        traffic = build_traffic(options.calls, options.seed, "manual")
        pushed = load(
            port,
            Source(traffic, 0, options.seconds),
            options.connections,
            0,
            meter(server.pid, name),
        )
        then()
        return pushed


def settled(
    url: str, receiver: str, options: argparse.Namespace
) -> tuple[int, dict[str, float], bool]:
    """Wait until every CDR's last version has been delivered (or `--drain-seconds`
    pass): the CDR count, the receiver's counts, and whether all arrived."""
    engine = make_engine(url)
    deadline = time.monotonic() + options.drain_seconds
    try:
        while True:
            with engine.connect() as connection:
                cdrs = connection.execute(select(func.count()).select_from(cdr)).scalar_one()
                waiting = connection.execute(select(func.count()).select_from(outbox)).scalar_one()
                pending = connection.execute(
                    select(func.count())
                    .select_from(hook_delivery)
                    .where(hook_delivery.c.state != "done")
                ).scalar_one()
            counts = httpx.get(f"{receiver}/count", timeout=10).json()
            if waiting == 0 and pending == 0:
                return int(cdrs), counts, True
            if time.monotonic() > deadline:
                return int(cdrs), counts, False
            time.sleep(0.5)
    finally:
        engine.dispose()


def measure(
    name: str, url: str, options: argparse.Namespace, logs: Path, console: Console
) -> Measured:
    console.rule(name)
    without = one_run(name, url, options, logs, None)
    console.print(f"without a hook: {without.per_second:,.0f} events/s")
    port = free_port()
    receiver = f"http://{HOST}:{port}"
    found: list[tuple[int, dict[str, float], bool]] = []
    with serving(receiver_command(port), port, logs / f"receiver-{name}.log"):
        with_hook = one_run(
            name,
            url,
            options,
            logs,
            f"{receiver}/hook",
            # The same server sends what the run left waiting.
            then=lambda: found.append(settled(url, receiver, options)),
        )
        console.print(f"with a hook:    {with_hook.per_second:,.0f} events/s")
    cdrs, counts, complete = found[0]
    seconds = float(counts["last"] - counts["first"])
    return Measured(
        name, without, with_hook, cdrs, int(counts["received"]), int(counts["distinct"]),
        seconds, complete,
    )  # fmt: skip


def report(console: Console, results: list[Measured], options: argparse.Namespace) -> None:
    table = Table(title="cdrlog hooks benchmark", caption_justify="left")
    for heading in (
        "backend", "events/s, no hook", "events/s, one hook", "with / without",
        "CDRs", "deliveries", "distinct ids", "deliveries/s", "all delivered",
    ):  # fmt: skip
        table.add_column(heading, justify="left" if heading == "backend" else "right")
    for r in results:
        table.add_row(
            r.backend,
            f"{r.without.per_second:,.0f}",
            f"{r.with_hook.per_second:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.cdrs:,}",
            f"{r.deliveries:,}",
            f"{r.distinct:,}",
            f"{r.delivery_rate:,.0f}",
            "yes" if r.complete else "[red]no",
        )
    table.caption = (
        f"{options.connections} senders flat out for {options.seconds:.0f} s per run, one "
        "`cdrlog serve`; the hook takes cdr.created, cdr.updated and cdr.closed. "
        "Deliveries/s: from the first delivery to the last, while the run lasted and after."
    )
    console.print(table)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000, help="calls per repetition")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-seconds", type=float, default=300.0)
    parser.add_argument(
        "--backends",
        default="sqlite,mariadb,postgresql",
        help="comma list of NAME or NAME=URL; names: " + ", ".join(DEFAULT_URLS),
    )
    options = parser.parse_args()
    options.backends = [backend_url(item) for item in options.backends.split(",") if item]
    return options


def main() -> int:
    options = arguments()
    console = Console(width=max(Console().width, 160))
    console.print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    results = []
    with tempfile.TemporaryDirectory(prefix="cdrlog-bench-hooks-") as logs:
        for name, url in options.backends:
            reason = unreachable(url)
            if reason is not None:
                console.print(f"[yellow]{name}: skipped, {reason}")
                continue
            results.append(measure(name, url, options, Path(logs), console))
    report(console, results, options)
    return 0 if results and all(r.complete for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
