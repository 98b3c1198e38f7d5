"""SqliteStore specifics under the shared contract: group commit and the compaction cadence.

The contract suite (`tests/contract`) checks the semantics every backend shares; these check what only
the SQLite write path does: commits queued together land in one transaction yet keep their own
revisions and outcomes, close() answers every queued commit first, and the event log is compacted in
slack-sized steps without ever keeping fewer than `retention` events.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from plasmavmc.errors import Conflict
from plasmavmc.store.base import Compacted, Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.sqlite_writes import compaction_slack


def _events(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


async def test_queued_commits_keep_call_order_revisions_and_fail_alone(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        base = await store.put("k/a", b"0")
        calls = [
            store.put("k/a", b"1", expected_revision=base),  # wins
            store.put("k/a", b"2", expected_revision=base),  # sees the write before it: loses
            store.commit([Write("k/b", b"b"), Write("k/a", b"3", expected_revision=base + 1)]),  # wins
            store.delete("k/missing"),  # changes nothing: no revision
            store.put("k/c", b"c", expected_revision=0),
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert results[0] == base + 1
        assert isinstance(results[1], Conflict)
        assert results[2] == base + 2
        assert results[3] is False
        assert results[4] == base + 3
        a = await store.get("k/a")
        assert a is not None and (a.value, a.mod_revision) == (b"3", base + 2)
        assert await store.revision() == base + 3
    finally:
        await store.close()


async def test_close_answers_every_queued_commit(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    writers = [asyncio.ensure_future(store.put(f"k/{i}", b"v")) for i in range(50)]
    await asyncio.sleep(0)  # every put is queued (or committing)
    await store.close()
    revisions = [await w for w in writers]
    assert sorted(revisions) == revisions and len(set(revisions)) == 50
    again = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert len(await again.list_all("k/")) == 50
    finally:
        await again.close()


@pytest.mark.parametrize("retention", [3, 50])
async def test_event_log_is_compacted_in_slack_steps(tmp_path: Path, retention: int) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, retention=retention)
    try:
        first = await store.put("k/a", b"0")
        for i in range(retention * 5):
            await store.put("k/a", str(i).encode())
            assert retention <= _events(path) <= retention + compaction_slack(retention) or i < retention
        with pytest.raises(Compacted):
            await anext(store.watch("k/", first))
    finally:
        await store.close()
