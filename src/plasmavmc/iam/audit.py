"""The audit log: who did (or was refused) what, on which resource, when, with what result, from where.

Entries are queued and written in batches by one background task (`run`, at most about one commit a
second), so recording costs the request no store round trip and the store's writer little; `flush()`
writes what is queued now (listing, shutdown). A server killed -9 loses at most the last second. Keys sort by time
(`audit/<ns>/<id>`); `prune` drops entries older than the retention — reading only those, from the
oldest key on, so its cost follows what expired, not the log's size — and, every `COUNT_EVERY`-th time
(a full listing: about every 10 min), the oldest beyond `max_entries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time

from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.types import codec
from plasmavmc.types.iam import AuditEntry, AuditFilter

__all__ = ["AuditEntry", "AuditFilter", "AuditLog"]

log = logging.getLogger(__name__)
BATCH = 256
COUNT_EVERY = 10  # prunes between two checks of `max_entries` (each lists the whole log)
LINGER = 1.0  # after the first entry, gather for this long: about one audit commit a second under load,
# not one per call (each commit costs the store's writer an fsync). `flush()` writes at once.


class AuditLog:
    def __init__(self, store: Store, retention_seconds: int = 30 * 86400, max_entries: int = 100_000) -> None:
        self.store = store
        self.retention_ns = retention_seconds * 1_000_000_000
        self.max_entries = max_entries
        self._queue: list[tuple[str, AuditEntry]] = []  # (key, entry)
        self._prefix = secrets.token_hex(4)  # this replica's part of each key: replicas never collide
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def record(self, entry: AuditEntry) -> None:
        self._queue.append((keys.audit_entry(entry.time_ns, f"{self._prefix}{next(self._seq):x}"), entry))
        self._wake.set()

    async def flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            await self.store.commit([Write(key, codec.dumps(entry)) for key, entry in batch])

    async def run(self, prune_every: float = 60.0) -> None:
        """Write queued entries as they come; prune now and then. Runs until cancelled (then flushes)."""
        next_prune = 0.0
        prunes = itertools.count()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=prune_every)
                    await asyncio.sleep(LINGER)
                self._wake.clear()
                try:
                    await self.flush()
                    if time.monotonic() >= next_prune:
                        await self.prune(count=next(prunes) % COUNT_EVERY == 0)
                        next_prune = time.monotonic() + prune_every
                except Exception:  # a store hiccup must not end auditing; entries stay queued
                    log.exception("audit log write failed; retrying")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())

    async def prune(self, *, count: bool = True) -> int:
        """Drop what expired and (`count`) the oldest beyond `max_entries`; how many entries went."""
        drop = await self._expired(time.time_ns() - self.retention_ns)
        if count:
            items = (await self.store.list(keys.AUDIT, start_after=drop[-1] if drop else None, limit=0)).items
            drop += [kv.key for kv in items[:max(len(items) - self.max_entries, 0)]]
        for start in range(0, len(drop), BATCH):
            await self.store.commit([Write(key, None) for key in drop[start:start + BATCH]])
        return len(drop)

    async def _expired(self, cutoff_ns: int) -> list[str]:
        """Keys of the entries older than `cutoff_ns`: the first ones in key order, read a page at a time."""
        drop: list[str] = []
        after: str | None = None
        while True:
            page = await self.store.list(keys.AUDIT, start_after=after, limit=BATCH)
            old = [kv.key for kv in page.items if int(kv.key[len(keys.AUDIT):].split("/")[0]) < cutoff_ns]
            drop += old
            if len(old) < len(page.items) or page.next_start_after is None:
                return drop
            after = page.next_start_after

    async def list(self, flt: AuditFilter) -> list[AuditEntry]:
        """Entries matching `flt`, oldest first, at most `flt.limit`."""
        start = keys.audit_entry(flt.since_ns, "0")[:-2] if flt.since_ns else None
        found: list[AuditEntry] = []
        after = start
        while len(found) < flt.limit:
            page = await self.store.list(keys.AUDIT, start_after=after, limit=500)
            for kv in page.items:
                entry = codec.loads(AuditEntry, kv.value)
                if flt.matches(entry):
                    found.append(entry)
            if page.next_start_after is None:
                break
            after = page.next_start_after
        return found[:flt.limit]
