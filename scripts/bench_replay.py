"""Replay benchmark: how many events/s `cdrlog replay` stores into a fresh SQLite file.

The file holds about `--events` events in the manual's shape (one team of 60 agents,
calls interleaved, 30% shuffled, 5% re-sent, one JSON object a line), from
`cdrlog.sim.traffic` as the push benchmark's. Generating a million takes longer than a
quick replay would, so the file and its calls' expected CDRs are kept in the temp dir,
keyed by size, seed and the generator's source, and reused by the next run. Then
`cdrlog replay --team` stores it (timed, with its CPU) and every CDR must be exact.

    .venv/bin/python scripts/bench_replay.py --events 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from sqlalchemy import select

import cdrlog.sim.traffic
from cdrlog.sim.traffic import ExpectedCdr, delivery_order, generate_calls, stored_as_expected
from cdrlog.store.database import make_engine
from cdrlog.store.tables import cdr

TARGET = 30_000  # events/s (issue 14)
TEAM = "team1"
AGENTS = 60
# Events per call in this traffic (agent events and re-sends included), to size the file.
EVENTS_PER_CALL = 10.5
# A fixed start: equal arguments give an equal file, which is what makes it reusable.
START = datetime(2025, 1, 6, 8, tzinfo=UTC)
FOLDER = Path(tempfile.gettempdir()) / "cdrlog_perf"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """One replay: events in the file, calls, wall and CPU seconds, CDRs exact."""

    events: int
    calls: int
    seconds: float
    cpu_seconds: float
    exact: int
    unexpected: int
    summary: str
    returncode: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.exact == self.calls and not self.unexpected

    def shown(self) -> str:
        """One line: the figure against its target, CPU per event, and the CDR check."""
        cpu = 1e6 * self.cpu_seconds / self.events if self.events else 0.0
        line = (
            f"cdrlog replay of {self.events:,} events ({self.calls:,} calls) into SQLite: "
            f"{self.seconds:.1f} s, {self.per_second:,.0f} events/s (target >= {TARGET:,}), "
            f"{cpu:.0f} us CPU per event; CDRs exact {self.exact:,}/{self.calls:,}"
        )
        if self.unexpected:
            line += f" (+{self.unexpected:,} unexpected rows)"
        return line if self.returncode == 0 else f"{line}; exit status {self.returncode}"


def generator_version() -> str:
    """A digest of the traffic generator's source: a changed generator makes a new file."""
    digest = hashlib.sha256()
    for source in sorted(Path(cdrlog.sim.traffic.__file__).parent.glob("traffic*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def replay_file(events: int, seed: int) -> tuple[Path, list[ExpectedCdr]]:
    """The events file and its expected CDRs, generated unless a previous run left them."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    stem = FOLDER / f"replay-{events}-{seed}-{generator_version()}"
    path, expected_path = stem.with_suffix(".jsonl"), stem.with_suffix(".expected")
    if not (path.exists() and expected_path.exists()):
        for stale in FOLDER.glob(f"replay-{events}-{seed}-*"):  # an older generator's
            stale.unlink()
        expected = generate(path, events, seed)
        expected_path.write_bytes(pickle.dumps(expected))
    return path, cast(list[ExpectedCdr], pickle.loads(expected_path.read_bytes()))


def generate(path: Path, events: int, seed: int) -> list[ExpectedCdr]:
    """Write the traffic, a JSON object a line (written whole, then renamed into place)."""
    rng = random.Random(seed)
    calls = generate_calls(
        rng,
        START,
        calls=max(1, round(events / EVENTS_PER_CALL)),
        teams=1,
        agents=AGENTS,
        time_format="mixed",
    )
    deliveries = delivery_order(calls, rng, shuffle_ratio=0.3, duplicate_ratio=0.05)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as output:
        for delivery in deliveries:
            output.write(json.dumps(delivery.event, separators=(",", ":")) + "\n")
    partial.rename(path)
    return [call.expected for call in calls]


def measure(events: int, seed: int, database: Path) -> ReplayResult:
    """Replay the file into a new SQLite database at `database`, then check every CDR."""
    path, expected = replay_file(events, seed)
    for leftover in database.parent.glob(database.name + "*"):
        leftover.unlink()
    url = f"sqlite:///{database}"
    command = [sys.executable, "-m", "cdrlog", "replay", "--db", url, "--team", TEAM, str(path)]
    cpu_before = children_cpu()
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    exact, unexpected = check(url, expected)
    return ReplayResult(
        events=count_lines(path),
        calls=len(expected),
        seconds=seconds,
        cpu_seconds=children_cpu() - cpu_before,
        exact=exact,
        unexpected=unexpected,
        summary=(done.stdout + done.stderr).strip(),
        returncode=done.returncode,
    )


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_lines(path: Path) -> int:
    with path.open("rb") as lines:
        return sum(1 for _ in lines)


def check(url: str, expected: list[ExpectedCdr]) -> tuple[int, int]:
    """How many calls have exactly their expected CDR; how many rows no call expects."""
    wanted = {(one.team, one.diallogid): one for one in expected}
    engine = make_engine(url)
    with engine.connect() as connection:
        stored = {
            (row.orgidentity, row.diallogid): stored_as_expected(row._mapping)
            for row in connection.execute(select(cdr))
        }
    engine.dispose()
    exact = sum(1 for key, one in wanted.items() if stored.get(key) == one)
    return exact, len(stored.keys() - wanted.keys())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="about this many")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cdrlog-replay-") as folder:
        result = measure(options.events, options.seed, Path(folder) / "replay.db")
    print(result.summary)
    print(result.shown())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
