"""The local spool: where accepted events wait, durably, while the database is away.

When the database cannot be reached, the receiver keeps answering 2xx by appending
events to a file of its own in the spool directory and fsyncing it before the answer
(so a 2xx still means the event survives a crash). A drain loop stores the spooled
events once the database answers again, oldest file first, and deletes each file once
all of it is committed; a re-sent line is only a duplicate. Each process holds an
exclusive lock on the file it appends to, so several receivers can share a spool
directory, and the files of a crashed process are drained by whoever comes next.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cdrlog.core.accepted import Accepted

DRAIN_BATCH = 500


class SpoolUnavailable(Exception):
    """The spool cannot take the event either (disk full, no permission)."""


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """An event as spooled: its team and the fields it arrived with."""

    team: str
    fields: dict[str, str]


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def append(self, batch: Sequence[Accepted]) -> None:
        """Write and fsync; returns only once the events are on disk."""
        lines = b"".join(_line(accepted) for accepted in batch)
        try:
            with self._lock:
                spool = self._open()
                spool.write(lines)
                spool.flush()
                os.fsync(spool.fileno())
        except OSError as error:
            raise SpoolUnavailable(f"cannot write to the spool: {error}") from error

    def depth(self) -> int:
        """Events waiting in the spool directory (every process's files)."""
        return sum(len(list(_read(path))) for path in self._files())

    def drain(self, store: Callable[[list[SpooledEvent]], None]) -> int:
        """Store every spooled event; returns how many. `store` raises while the
        database is still away, and the files stay for the next try."""
        with self._lock:
            self._close()  # new appends go to a new file while this one drains
        drained = 0
        for path in self._files():
            with _claimed(path) as claimed:
                if not claimed:
                    continue  # another live process is appending to it
                drained += _drain_file(path, store)
        return drained

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> IO[bytes]:
        if self._file is None:
            # Owner only: spooled events are calls, as private as the database.
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            name = f"spool-{time.time_ns()}-{socket.gethostname()}-{os.getpid()}.jsonl"
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            spool = os.fdopen(os.open(self.directory / name, flags, 0o600), "ab")
            fcntl.flock(spool.fileno(), fcntl.LOCK_EX)
            self._file = spool
            _sync_directory(self.directory)
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()  # also releases the lock
            self._file = None

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("spool-*.jsonl"))


def _line(accepted: Accepted) -> bytes:
    record = {"team": accepted.event.team, "fields": dict(accepted.fields)}
    return json.dumps(record, ensure_ascii=True).encode() + b"\n"


def _read(path: Path) -> Iterator[SpooledEvent]:
    with path.open("rb") as spooled:
        for raw in spooled:
            # A torn last line was never acknowledged (fsync had not returned): skip it.
            if not raw.endswith(b"\n"):
                return
            record = json.loads(raw)
            yield SpooledEvent(team=record["team"], fields=record["fields"])


def _drain_file(path: Path, store: Callable[[list[SpooledEvent]], None]) -> int:
    drained = 0
    batch: list[SpooledEvent] = []
    for event in _read(path):
        batch.append(event)
        if len(batch) == DRAIN_BATCH:
            store(batch)
            drained += len(batch)
            batch = []
    if batch:
        store(batch)
        drained += len(batch)
    path.unlink()
    _sync_directory(path.parent)
    return drained


class _claimed:
    """An exclusive, non-blocking lock on a spool file for the length of a `with`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> bool:
        try:
            self.handle = self.path.open("rb")
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def _sync_directory(directory: Path) -> None:
    """Make a file's creation or removal itself durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
