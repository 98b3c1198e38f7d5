"""The server process's garbage-collector policy (issue 19): the records a server keeps for the life of
the process are taken out of the cyclic collector's sight, so its full passes stop pausing every call.

Why: at 100,000 VMs the server keeps a few hundred thousand objects for good (the watched copies'
entries, the state index). CPython's full (generation 2) pass walks every one of them, holding the
event loop tens of milliseconds, and those pauses were the p99 of GetVm. Reference counting frees
almost all of what a call makes; the cyclic collector is only for reference cycles.

What, in order:
- `configure()` at start, before the store is read: every pass is timed (`observe/gcpauses.py`), and
  young passes run every `GEN0` allocations instead of 700. A call's own garbage is freed by reference
  counting; what a young pass finds is grpc's few cyclic objects per call and, mostly, the calls still
  in flight, which it then promotes: fewer, larger passes cost less in all, promote less, and so make
  fewer middle and full passes (at 100,000 VMs: the start-up listing made ~10 full passes over all it
  had listed, ~1.9 s of CPU at load, and none with this threshold).
- `gcpauses.freeze_alive()` once start-up loading is done (state index and GetVm copies listed,
  bounded in time): one full pass, then `gc.freeze()` moves every object alive to the permanent
  generation, which no automatic pass walks.
- After an automatic full pass longer than `REFREEZE_AFTER` (the unfrozen old generation grew with
  change: a rewritten VM record is a new entry), `gc.freeze()` again, in the collector's own callback,
  when what survived the pass is live by construction.
- `run()`: every `FULL_PASS_SECONDS`, `unfreeze`, one full pass, `freeze` — one long pause an hour.

Why this does not leak: a frozen object is only hidden from the CYCLIC collector. Dropped, it is
freed by reference counting at once like any other (a replaced entry and its bytes). What only the
cyclic collector could free is a reference cycle among frozen objects that became garbage after the
freeze (say, the state of a call in flight when it happened, frozen with the rest): the hourly pass,
which unfreezes everything first, reclaims those. The long-lived caches themselves are acyclic.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable

from plasmavmc.observe import gcpauses

log = logging.getLogger(__name__)
GEN0 = 10_000  # allocations between young passes (CPython's default: 700)
REFREEZE_AFTER = 0.005  # seconds: a full pass this long means the unfrozen old generation is big
FULL_PASS_SECONDS = 3600.0  # between passes over everything, frozen objects included


def _refreeze(seconds: float) -> None:
    if seconds >= REFREEZE_AFTER:
        gc.freeze()
        gcpauses.FROZEN.set(gc.get_freeze_count())


def configure() -> None:
    """At start-up: time every pass, raise the young threshold, refreeze after a long full pass."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0, gen1, gen2)
    gcpauses.install(on_full=_refreeze)


async def run(loaded: Awaitable[None]) -> None:
    """`gcpauses.freeze_alive` once `loaded` is done, then again every `FULL_PASS_SECONDS`, until cancelled."""
    await loaded
    while True:
        seconds = gcpauses.freeze_alive()
        log.info("garbage collector: full pass in %.3f s, %d objects frozen", seconds, gc.get_freeze_count())
        await asyncio.sleep(FULL_PASS_SECONDS)  # periodic: the hourly full pass
