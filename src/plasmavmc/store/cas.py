"""Bounded compare-and-swap retries: how many times a read-modify-write may lose, and how long it waits
between losses.

Every CAS retry loop in the control plane iterates `attempts(what)`: at most `MAX_CAS_RETRIES` rounds,
then CONFLICT (retryable) naming what kept changing. After a lost round the loop awaits `backoff(n)`:
nothing the first time (a single race is the common case), then a jittered exponential wait capped at
`BACKOFF_CAP_S`, so writers that keep colliding spread out instead of spinning.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

from plasmavmc.errors import Conflict

MAX_CAS_RETRIES = 20
BACKOFF_BASE_S = 0.001
BACKOFF_CAP_S = 0.05


def attempts(what: str, limit: int = MAX_CAS_RETRIES) -> Iterator[int]:
    """Round numbers 0..limit-1; exhausting them raises Conflict naming `what`."""
    yield from range(limit)
    raise Conflict(f"{what}: still changing after {limit} compare-and-swap attempts, try again")


async def backoff(lost: int) -> None:
    """Wait after losing round `lost` (0-based): no wait after the first loss, then up to 2^n ms (capped)."""
    if lost > 0:
        await asyncio.sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**lost)))
