"""The SQLite store's event tail (`store/sqlite_tail.py`): every watcher of a process follows the log
through one read per commit, gets exactly its prefix's events in order, and still sees another
process's writes (by its poll), history older than the tail keeps, and the whole log past a trim."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.store import sqlite, sqlite_reads, sqlite_tail
from plasmavmc.store.base import Store, WatchEvent, Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.watched import WatchedPrefix

DEADLINE = 10.0


class _Follower:
    """Collects a watch's events in a task."""

    def __init__(self, store: Store, prefix: str, start: int) -> None:
        self.events: list[WatchEvent] = []
        self._stream: AsyncIterator[WatchEvent] = store.watch(prefix, start)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for event in self._stream:
            self.events.append(event)

    async def has(self, count: int) -> list[WatchEvent]:
        async with asyncio.timeout(DEADLINE):
            while len(self.events) < count:
                await asyncio.sleep(0.005)
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_one_read_of_the_log_per_commit_for_every_watcher(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    reads: list[str] = []
    real = sqlite_reads.events_from

    def counted(prefix: str, start: int, conn: object) -> object:
        reads.append(prefix)
        return real(prefix, start, conn)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite, "events_from", counted)
    start = await store.revision() + 1  # every watch from here, whenever its task first runs
    followers = [_Follower(store, f"p{n}/", start) for n in range(6)]
    try:
        before = len(reads)
        for i in range(10):
            await store.commit([Write(f"p0/k{i}", b"v", None), Write(f"p1/k{i}", b"w", None)])
        events = await followers[0].has(10)
        assert [e.key for e in events] == [f"p0/k{i}" for i in range(10)]
        assert [e.key for e in await followers[1].has(10)] == [f"p1/k{i}" for i in range(10)]
        assert all(not f.events for f in followers[2:])
        # one tail read per commit at most (it reads once more when a commit lands during a read);
        # each watcher reading for itself made 6 per commit
        assert len(reads) - before <= 2 * 10, reads[before:]
        assert all(prefix == "" for prefix in reads[before:])
    finally:
        for f in followers:
            await f.stop()
        await store.close()


async def test_another_process_writes_are_seen_by_the_poll(tmp_path: Path) -> None:
    mine = await SqliteStore.open(tmp_path / "s.db", poll_interval=0.05)
    other = await SqliteStore.open(tmp_path / "s.db", poll_interval=0.05)
    follower = _Follower(mine, "vm/", await mine.revision() + 1)
    try:
        await other.commit([Write("vm/a", b"1", None)])
        await mine.commit([Write("node/x", b"2", None)])  # a commit of its own under another prefix
        await other.commit([Write("vm/b", b"3", None)])
        events = await follower.has(2)
        assert [(e.key, e.value) for e in events] == [("vm/a", b"1"), ("vm/b", b"3")]
    finally:
        await follower.stop()
        await other.close()
        await mine.close()


async def test_a_watch_from_old_history_then_live_and_past_a_trim(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_tail, "KEEP", 4)
    store = await SqliteStore.open(tmp_path / "s.db")
    live = _Follower(store, "k/", await store.revision() + 1)
    try:
        first = await store.commit([Write("k/0", b"0", None)])
        for i in range(1, 30):  # the tail keeps 4-8 events: it trims many times over
            await store.commit([Write(f"k/{i}", str(i).encode(), None), Write(f"x/{i}", b"", None)])
        old = _Follower(store, "k/", first)  # starts far behind what the tail keeps
        for i in range(30, 35):
            await store.commit([Write(f"k/{i}", str(i).encode(), None)])
        want = [f"k/{i}" for i in range(35)]
        assert [e.key for e in await old.has(35)] == want
        assert [e.key for e in await live.has(35)] == want
        revisions = [e.revision for e in live.events]
        assert revisions == sorted(revisions) and len(set(revisions)) == 35
        await old.stop()
    finally:
        await live.stop()
        await store.close()


@pytest.mark.timeout(30)
async def test_watchers_wait_while_the_tail_reads_a_backlog_in_chunks(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Many commits land at once and the tail reads them a few revisions at a time: the watchers it
    covers wait for it (they never spin on the event loop) and get every event once, in order."""
    monkeypatch.setattr(sqlite_reads, "WATCH_BATCH_REVISIONS", 3)
    store = await SqliteStore.open(tmp_path / "s.db")
    start = await store.revision() + 1
    followers = [_Follower(store, "k/", start), _Follower(store, "k/1", start)]
    try:
        await asyncio.gather(*(store.commit([Write(f"k/{i:02d}", b"v", None)]) for i in range(60)))
        keys = [e.key for e in await followers[0].has(60)]
        assert sorted(keys) == [f"k/{i:02d}" for i in range(60)] and len(set(keys)) == 60
        revisions = [e.revision for e in followers[0].events]
        assert revisions == sorted(revisions)
        assert [e.key for e in await followers[1].has(10)] == [f"k/1{i}" for i in range(10)]
    finally:
        for f in followers:
            await f.stop()
        await store.close()


@pytest.mark.timeout(60)
async def test_watchers_go_on_while_commits_keep_coming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a steady stream of commits the tail's refresh never ends (each commit makes it read once
    more); a watcher behind it waits for its next read only, not for the stream to stop."""
    monkeypatch.setattr(sqlite_reads, "WATCH_BATCH_REVISIONS", 1)  # the tail stays behind the stream
    store = await SqliteStore.open(tmp_path / "s.db", poll_interval=0.05)
    start = await store.revision() + 1
    follower = _Follower(store, "k/", start)
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            await asyncio.gather(*(store.commit([Write(f"k/{n + i:06d}", b"v", None)]) for i in range(50)))
            n += 50

    producer = asyncio.create_task(produce())
    try:
        got = await follower.has(200)  # while the stream goes on
        assert not producer.done()
        keys = [e.key for e in got]
        assert keys[:200] == [f"k/{i:06d}" for i in range(200)]
    finally:
        stop.set()
        await producer
        await follower.stop()
        await store.close()


async def test_a_commit_reaches_watchers_after_its_writer_answered_unless_a_reader_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail reads a commit `KICK_DELAY_S` after it (made a minute here, the poll half an hour: neither
    comes within this test), and at once when a reader waits for this process's own write."""
    monkeypatch.setattr(sqlite_tail, "KICK_DELAY_S", 60.0)
    store = await SqliteStore.open(tmp_path / "s.db", poll_interval=1800.0)
    copy = WatchedPrefix(store, "p/")
    follower = _Follower(store, "p/", await store.revision() + 1)
    following = asyncio.create_task(copy.run())
    try:
        assert await copy.seen(0, DEADLINE)  # listed, now following the watch
        await store.commit([Write("p/a", b"1")])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follower.has(1), 0.3)  # not read yet: deferred
        assert not copy.covers_own_writes()
        assert await copy.caught_up(DEADLINE)  # a reader of its own write has it read now
        assert [e.key for e in await follower.has(1)] == ["p/a"]  # the same read woke every watcher
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await follower.stop()
        await store.close()
