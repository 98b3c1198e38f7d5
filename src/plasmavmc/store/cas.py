"""Bounded compare-and-swap retries: how many times a read-modify-write may lose, and how long it waits
between losses.

Every CAS retry loop in the control plane iterates `attempts(what)`: at most `MAX_CAS_RETRIES` rounds,
then CONFLICT (retryable) naming what kept changing. After a lost round the loop awaits `backoff(n)`: a
jittered wait of up to 1 ms, doubling per loss to `MAX_BACKOFF`, so writers that keep colliding spread
out instead of spinning.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

from plasmavmc.errors import Conflict

MAX_CAS_RETRIES = 60
MAX_BACKOFF = 0.05  # seconds: the longest pause between two attempts of one retry loop


def attempts(what: str, limit: int = MAX_CAS_RETRIES) -> Iterator[int]:
    """Round numbers 0..limit-1; exhausting them raises Conflict naming `what`."""
    yield from range(limit)
    raise Conflict(f"{what}: still changing after {limit} compare-and-swap attempts, try again")


async def backoff(attempt: int) -> None:
    """Pause after the `attempt`-th lost race (0-based): up to 1 ms, doubling to `MAX_BACKOFF`, jittered."""
    await asyncio.sleep(random.uniform(0, min(MAX_BACKOFF, 0.001 * 2**attempt)))
