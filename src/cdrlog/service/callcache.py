"""What a writer remembers of the calls it wrote last: their events, fingerprints and CDR,
under the version its transaction gave each call's lock row.

A transaction that locks a call reads the row's version. Only the transaction that
wrote that version (or read the call back under it) can hold its state here, and every
transaction that changes a call's journal or CDR writes a new random version, in any
process. So a state found under the version just read is exactly what the database
holds for the call, and new events fold onto it with no read; any other version (another
process wrote since, a rebuild, a purge, a restart) is a miss, and the call is read back
as before. The stored CDR stays a function of the set of the call's events.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cdrlog.core.events import CallEvent
from cdrlog.core.record import Cdr
from cdrlog.store.hotpath import NEW, READ_BACK

CallKey = tuple[str, str]
# Calls in flight at once in a large call center are a few thousand; a call's state is a
# few kilobytes.
DEFAULT_CAPACITY = 16_384


@dataclass(frozen=True, slots=True)
class CallState:
    """A call as committed under `version`: its events that can change its CDR, their
    fingerprints, and its CDR (None: no row)."""

    version: int
    events: tuple[CallEvent, ...]
    fingerprints: frozenset[str]
    cdr: Cdr | None


EMPTY = CallState(NEW, (), frozenset(), None)


def new_version() -> int:
    """A version no transaction of any process has written: 63 random bits, never one
    of the versions with a meaning (`os.urandom`, so processes forked from one parent
    still differ)."""
    while (version := int.from_bytes(os.urandom(8), "big") >> 1) in (NEW, READ_BACK):
        pass  # pragma: no cover - one chance in 2**62
    return version


class CallCache:
    """A bounded, thread-safe map of call states, least recently used out first.
    Capacity 0 keeps nothing: every call is read back."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._states: OrderedDict[CallKey, CallState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CallKey, version: int) -> CallState | None:
        """The call's state if it is the one committed under `version`: a new call's is
        empty, and one written without a stamp is never held."""
        if version == NEW:
            return EMPTY
        if version == READ_BACK:
            return None
        with self._lock:
            state = self._states.get(key)
            if state is None or state.version != version:
                return None
            self._states.move_to_end(key)
            return state

    def keep(self, states: Mapping[CallKey, CallState]) -> None:
        """Remember these states, which were committed (call after the commit only)."""
        if self.capacity <= 0:
            return
        with self._lock:
            for key, state in states.items():
                self._states[key] = state
                self._states.move_to_end(key)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def forget(self, keys: Iterable[CallKey]) -> None:
        with self._lock:
            for key in keys:
                self._states.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._states

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
