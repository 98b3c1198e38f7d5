"""`ExpiringLru`: a bounded map whose entries each expire at their own time, least recently used evicted
first when full. The per-call caches of IAM (callers by credential) keep their answers here, so a cache
never grows with the number of distinct credentials seen and never answers past an entry's expiry."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

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
