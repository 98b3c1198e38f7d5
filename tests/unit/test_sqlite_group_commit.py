"""SqliteStore specifics under the shared contract: group commit and the compaction cadence.

The contract suite (`tests/contract`) checks the semantics every backend shares; these check what only
the SQLite write path does: commits queued together land in one transaction yet keep their own
revisions and outcomes, close() answers every queued commit first, the event log is compacted in
slack-sized steps without ever keeping fewer than `retention` events, and a batch of commits that need
not be durable commits without an fsync, yet survives a killed process.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from plasmavmc.errors import Conflict
from plasmavmc.store.base import Compacted, Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.sqlite_writes import Commit, apply_batch, compaction_slack


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


async def _batch_sync_level(path: Path, durable: list[bool]) -> int:
    """The synchronous level `apply_batch` sets for a batch of these commits on a store's file (1 NORMAL,
    2 FULL): the level SQLite applies at that batch's COMMIT."""
    await (await SqliteStore.open(path)).close()  # the schema
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        batch = [Commit((Write(f"k/{i}", b"v"),), durable=d) for i, d in enumerate(durable)]
        outcomes = apply_batch(conn, batch, retention=1000, synced=True)
        assert all(not isinstance(o, Conflict) for o in outcomes)
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])
    finally:
        conn.close()


async def test_a_batch_fsyncs_unless_none_of_its_commits_is_durable(tmp_path: Path) -> None:
    assert await _batch_sync_level(tmp_path / "a.db", [False, False]) == 1  # NORMAL: no fsync at COMMIT
    assert await _batch_sync_level(tmp_path / "b.db", [False, True]) == 2  # one durable commit: FULL
    assert await _batch_sync_level(tmp_path / "c.db", [True]) == 2


_KILLED_WRITER = """
import asyncio, os, signal, sys
from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore

async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    await store.put("k/durable", b"d")
    await store.commit([Write("k/lazy", b"l")], durable=False)
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_a_commit_not_made_durable_survives_a_killed_process(tmp_path: Path) -> None:
    """What `durable=False` may lose is an OS crash's or a power cut's, never a killed server's: the
    commit is in the WAL file (the OS's page cache) when the caller is answered."""
    path = tmp_path / "s.db"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _KILLED_WRITER, str(path),
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert out == b"committed\n" and proc.returncode == -signal.SIGKILL
    store = await SqliteStore.open(path)
    try:
        lazy = await store.get("k/lazy")
        assert lazy is not None and lazy.value == b"l"
    finally:
        await store.close()
