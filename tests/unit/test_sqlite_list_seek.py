"""SqliteStore's paged `list` seeks to its page token: the plan uses one range on the primary key, and
a page deep in the listing costs SQLite as many steps as the first one (counted by a progress handler,
so the check is about work done, not time)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.sqlite_reads import list_in, list_query

KEYS = [f"vms/o/p/{i:05d}" for i in range(5000)]


def _plan(conn: sqlite3.Connection, prefix: str, start_after: str | None) -> str:
    sql, params = list_query(prefix, start_after, 100)
    return " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def _steps(conn: sqlite3.Connection, start_after: str | None) -> int:
    """SQLite virtual-machine steps (in units of 10) to read one page of 100 after `start_after`."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 10)
    try:
        page = list_in("vms/o/p/", start_after, 100, conn)
    finally:
        conn.set_progress_handler(None, 0)
    assert len(page.items) == 100
    return count[0]


async def test_the_plan_seeks_with_one_range_on_the_primary_key(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        for chunk in range(0, len(KEYS), 1000):
            await store.commit([Write(key, b"x" * 200) for key in KEYS[chunk : chunk + 1000]])
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        for start_after in (None, KEYS[4000]):
            plan = _plan(conn, "vms/o/p/", start_after)
            assert "SEARCH kv USING PRIMARY KEY (key>? AND key<?)" in plan, plan
        first, deep = _steps(conn, None), _steps(conn, KEYS[4800])
        assert deep <= first * 1.5 + 10, (first, deep)  # the old plan scanned 4,800 keys first: ~40x
    finally:
        conn.close()
