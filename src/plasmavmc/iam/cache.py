"""`ExpiringLru`: a bounded map whose entries each expire at their own time, least recently used evicted
first when full. The per-call caches of IAM (callers by credential) keep their answers here, so a cache
never grows with the number of distinct credentials seen and never answers past an entry's expiry.

`InFlight`: one piece of work per key at a time — the callers that miss a cache for the same key while
its answer is being worked out await that one task (a caller that gives up does not cancel it for the
others), so an expiry under load costs one store read or hash check, not one per call in flight."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringLru(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K, now: float) -> V | None:
        """The value kept for `key` if it expires after `now` (a `time.monotonic()` reading), else None."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[1] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return hit[0]

    def put(self, key: K, value: V, until: float) -> None:
        """Keep `value` for `key` until the monotonic time `until`; evict the least recently used if full."""
        self._entries[key] = (value, until)
        self._entries.move_to_end(key)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class InFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The answer of `work()` for `key`: started now unless a task for `key` is running already."""
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.create_task(work())
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already (or left)

    def __len__(self) -> int:
        return len(self._tasks)
