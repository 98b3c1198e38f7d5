"""The event-log compaction check that runs in every write batch (`sqlite_writes._maybe_compact`) costs
the same on a long log as on a short one: it reads the two ends of the log's primary key instead of
scanning it (counted in SQLite virtual-machine steps, so the check is about work done, not time).
Before, `SELECT MIN(id), MAX(id)` scanned every event, values included, on every batch."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.sqlite_writes import _maybe_compact


async def _log_of(path: Path, events: int) -> None:
    store = await SqliteStore.open(path, retention=100_000)
    try:
        for start in range(0, events, 500):
            await store.commit([Write(f"k/{i:06d}", b"v" * 300) for i in range(start, min(start + 500, events))])
    finally:
        await store.close()


def _steps(path: Path) -> int:
    """Steps (in units of 10) of one compaction check that finds nothing to compact."""
    conn = sqlite3.connect(path, isolation_level=None)
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    try:
        conn.set_progress_handler(tick, 10)
        conn.execute("BEGIN")
        _maybe_compact(conn, 100_000)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return count[0]


async def test_compaction_check_does_not_scan_the_event_log(tmp_path: Path) -> None:
    await _log_of(tmp_path / "short.db", 100)
    await _log_of(tmp_path / "long.db", 5000)
    short, long = _steps(tmp_path / "short.db"), _steps(tmp_path / "long.db")
    assert long <= short + 5, (short, long)  # a scan: ~50x more steps on the long log
