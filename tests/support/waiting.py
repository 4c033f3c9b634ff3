"""Waiting for something to happen, rather than for a while.

A test that sleeps a fixed time and then looks is either slow (the sleep is long) or
flaky (on a busy machine it was not long enough). `wait_until` looks again and again,
returns as soon as the condition holds, and gives up only after a deadline generous
enough that reaching it means the thing will not happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Far beyond what any awaited event takes on a loaded machine: reaching it is a failure.
GENEROUS = 30.0


def wait_until(
    condition: Callable[[], T],
    timeout: float = GENEROUS,
    *,
    every: float = 0.02,
    what: str = "the condition",
) -> T:
    """Call `condition` until it returns something true, and return that value.

    Raises AssertionError naming `what` (and the last value seen) once `timeout`
    seconds have passed without it. `condition` is called at least once, and its last
    call ends after the deadline, so no chance is lost to the pause between calls.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout:g} s (last: {result!r})")
        time.sleep(every)
