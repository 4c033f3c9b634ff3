"""Planning a bulk load: how many calls start when, over the last days, with a call
center's weekly shape (busy working hours, quiet nights and weekends, in UTC), cut into
batches that are inserted one transaction each."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# Relative call volume per hour of a weekday (UTC, 00 to 23): a day shift with a lunch dip.
# fmt: off
_WEEKDAY_HOURS = (
    0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.2, 0.6, 1.0, 1.0, 1.0,
    0.7, 0.8, 1.0, 1.0, 1.0, 0.7, 0.35, 0.2, 0.1, 0.1, 0.04, 0.04,
)
# fmt: on
# Monday .. Sunday.
_WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.9, 0.35, 0.15)


@dataclass(frozen=True, slots=True)
class Slot:
    """`calls` calls arriving from `start` on, about `gap` seconds apart."""

    start: datetime
    calls: int
    gap: float


@dataclass(frozen=True, slots=True)
class Batch:
    """A unit of work: numbered slots, whose calls are inserted in one transaction."""

    seed: int
    teams: int
    agents: int
    slots: tuple[tuple[int, Slot], ...]


def plan(
    cdrs: int, *, seed: int, start: datetime, days: int, teams: int, agents: int, size: int
) -> list[Batch]:
    """The batches that make `cdrs` calls: consecutive slots of about `size` calls."""
    planned: list[Batch] = []
    waiting: list[tuple[int, Slot]] = []
    for number, slot in enumerate(slots(random.Random(seed), cdrs, start, days, size)):
        waiting.append((number, slot))
        if sum(s.calls for _, s in waiting) >= size:
            planned.append(Batch(seed, teams, agents, tuple(waiting)))
            waiting = []
    if waiting:
        planned.append(Batch(seed, teams, agents, tuple(waiting)))
    return planned


def slots(rng: random.Random, cdrs: int, start: datetime, days: int, most: int) -> list[Slot]:
    """`cdrs` calls shared out over the hours from `start`, by the weekly shape with a
    little noise; an hour busier than `most` calls is split into slots of at most that."""
    hours = [start + timedelta(hours=h) for h in range(days * 24)]
    weights = [_weight(hour) * rng.uniform(0.8, 1.2) for hour in hours]
    shared: list[Slot] = []
    for hour, count in zip(hours, _apportion(cdrs, weights), strict=True):
        pieces = -(-count // most)
        for piece in range(pieces):
            calls = count // pieces + (1 if piece < count % pieces else 0)
            at = hour + timedelta(seconds=3600 * piece / pieces)
            shared.append(Slot(at.replace(microsecond=0), calls, 3600 / count))
    return shared


def _weight(hour: datetime) -> float:
    return _WEEKDAY_HOURS[hour.hour] * _WEEKDAY_FACTOR[hour.weekday()]


def _apportion(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights`, by largest remainder: sums to `total`."""
    scale = total / sum(weights)
    shares = [weight * scale for weight in weights]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts
