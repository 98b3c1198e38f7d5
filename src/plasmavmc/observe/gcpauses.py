"""The cyclic garbage collector's pauses of this process, timed by `gc.callbacks` (issue 19).

A CPython collection stops every thread holding the GIL (the event loop included) for as long as it
walks its generation: at 100,000 VMs a full (generation 2) pass over every object the process keeps
used to take tens of milliseconds and land in the tail latency of every call in flight. `install()`
times each pass into `plasmavmc_gc_pause_seconds{generation}`, so a benchmark or an operator sees what
the GC costs the loop; `on_full` lets the GC policy (`server/gc_policy.py`) act right after a full
pass (when what survived it is live). `freeze_alive()` takes what a process keeps for good out of the
passes' sight (the server once its start-up loading is done, the agent once it serves): a later full
pass walks only what came after (the agent's first full pass walked its start-up objects for ~39 ms
here, on the loop a RunVm's console line goes through).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge, Histogram

GC_PAUSES = Histogram(
    "plasmavmc_gc_pause_seconds", "Pauses of the cyclic garbage collector, by generation collected",
    ["generation"], buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
FROZEN = Gauge("plasmavmc_gc_frozen_objects", "Objects the GC policy froze (kept for good: never walked by a pass)")
# made once: a pass may start inside any allocation, even one under a metric family's lock (`labels`),
# so the callback only touches these children, whose value locks guard no allocation that can start one
_CHILDREN = tuple(GC_PAUSES.labels(str(g)) for g in range(3))


class _Timer:
    """The one `gc.callbacks` entry of the process."""

    def __init__(self) -> None:
        self.started = 0.0
        self.on_full: list[Callable[[float], None]] = []

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        seconds = time.perf_counter() - self.started
        generation = int(info["generation"])
        _CHILDREN[generation].observe(seconds)
        if generation == 2:
            for hook in self.on_full:
                hook(seconds)


_TIMER = _Timer()


def install(on_full: Callable[[float], None] | None = None) -> None:
    """Time every collection from now on (once per process); `on_full(seconds)` runs after each full
    pass, with its duration."""
    if _TIMER not in gc.callbacks:
        gc.callbacks.append(_TIMER)
    if on_full is not None and on_full not in _TIMER.on_full:
        _TIMER.on_full.append(on_full)


def freeze_alive() -> float:
    """One full pass, then freeze what is alive (never walked by an automatic pass again, still freed
    by reference counting when dropped); the pass's seconds."""
    began = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    FROZEN.set(gc.get_freeze_count())
    return time.perf_counter() - began
