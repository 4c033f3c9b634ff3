"""An event that passed its checks, and what storing it did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cdrlog.core.events import Event


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event that passed `parse_event`, with the fields it arrived as."""

    event: Event
    fields: Mapping[str, str]
    fingerprint: str


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"  # kept on local disk while the database is away
