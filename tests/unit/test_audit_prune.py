"""The audit log's pruning on a real SQLite store: what expired goes (read from the oldest key on), and
the oldest beyond `max_entries` go when the count is checked."""

from __future__ import annotations

import time
from pathlib import Path

from plasmavmc.iam.audit import AuditEntry, AuditLog
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore

DAY_NS = 86_400 * 10**9


def _entry(time_ns: int, n: int) -> AuditEntry:
    return AuditEntry(time_ns, f"user:{n}", "vm.create", "org", "proj", f"vm-{n}", "OK", "127.0.0.1")


async def _kept(store: SqliteStore) -> list[str]:
    return [kv.key for kv in await store.list_all(keys.AUDIT)]


async def test_prune_drops_the_expired_then_the_oldest_beyond_the_cap(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        log = AuditLog(store, retention_seconds=86_400, max_entries=4)
        now = time.time_ns()
        for n in range(600):  # more than one page of expired entries (pages of 256)
            log.record(_entry(now - 3 * DAY_NS + n, n))
        for n in range(600, 606):
            log.record(_entry(now + n, n))
        await log.flush()
        assert await log.prune(count=False) == 600  # the expired only: the cap is not looked at
        fresh = await _kept(store)
        assert len(fresh) == 6 and all(int(k[len(keys.AUDIT):].split("/")[0]) >= now for k in fresh)
        assert await log.prune(count=True) == 2  # the two oldest beyond the cap of 4
        assert await _kept(store) == fresh[2:]
        assert await log.prune() == 0  # nothing left to drop
    finally:
        await store.close()
