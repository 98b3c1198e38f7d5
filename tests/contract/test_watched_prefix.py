"""`WatchedPrefix` (store/watched.py) over every store: a copy of a prefix kept by list + watch, and the
write fence that gives a reader its own writes.

Right after a write returns, the watch has usually not delivered it yet (the writer resumes first), so a
copy read without waiting for `store.fence` would show the old value: each step checks the new one.
Nothing synchronises by sleeping: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from plasmavmc.observe.metrics import WATCHED_UNDERIVED
from plasmavmc.store import watched
from plasmavmc.store.base import Store, Write
from plasmavmc.store.watched import Entry, WatchedPrefix
from tests.contract.conftest import Backend

DEADLINE = 10.0


@contextlib.asynccontextmanager
async def running(copy: WatchedPrefix) -> AsyncIterator[WatchedPrefix]:
    task = asyncio.create_task(copy.run())
    try:
        yield copy
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_copy_lists_then_follows_and_holds_own_writes(store: Store) -> None:
    await store.commit([Write(f"w/k{i:03d}", b"0") for i in range(50)] + [Write("x/other", b"-")])
    async with running(WatchedPrefix(store, "w/")) as copy:
        assert await copy.caught_up(DEADLINE)
        assert sorted(copy.entries) == [f"w/k{i:03d}" for i in range(50)]
        for i in range(1, 21):
            await store.put("w/k007", str(i).encode())
            assert await copy.caught_up(DEADLINE)
            entry = copy.get("w/k007")
            assert entry is not None and entry.value == str(i).encode()
            entry.memo = i  # a reader's derived value goes with the entry on the next change
        await store.commit([Write("w/k001", None), Write("w/new", b"n")])
        assert await copy.caught_up(DEADLINE)
        assert copy.get("w/k001") is None and copy.get("w/new") is not None
        kept = copy.get("w/k007")
        assert kept is not None and kept.memo == 20
        await store.put("x/other", b"+")  # outside the prefix: no fence to wait for
        assert copy.covers_own_writes()


async def test_writes_of_another_handle_arrive_through_the_watch(store: Store, backend: Backend) -> None:
    other = await backend.open()
    async with running(WatchedPrefix(store, "w/")) as copy:
        assert await copy.caught_up(DEADLINE)
        revision = await other.put("w/theirs", b"1")
        assert await copy.seen(revision, DEADLINE)
        entry = copy.get("w/theirs")
        assert entry is not None and entry.value == b"1" and entry.revision == revision


async def test_derive_runs_once_per_change_and_may_drop_the_value(store: Store) -> None:
    await store.commit([Write(f"d/k{i:03d}", str(i).encode()) for i in range(60)])
    made: list[tuple[str, int]] = []

    def derive(key: str, entry: Entry) -> None:
        made.append((key, entry.revision))
        entry.memo, entry.value = b"m" + entry.value, b""

    async with running(WatchedPrefix(store, "d/", derive=derive)) as copy:
        assert await copy.caught_up(DEADLINE)
        async with asyncio.timeout(DEADLINE):  # listed entries are derived by a pass after readiness
            while len(made) < 60:
                await asyncio.sleep(0.01)  # polling the pass, with a deadline
        assert sorted(k for k, _ in made) == [f"d/k{i:03d}" for i in range(60)]  # each listed key once
        assert WATCHED_UNDERIVED.labels("d/")._value.get() == 0  # the pass says it is done
        await store.put("d/k005", b"x")
        assert await copy.caught_up(DEADLINE)
        entry = copy.get("d/k005")
        assert entry is not None and entry.value == b"x"  # the change is in; derived later, in the background
        await until_derived(entry)
        assert entry.memo == b"mx" and entry.value == b""
        assert [k for k, _ in made].count("d/k005") == 2  # listed, then changed once
        assert len(made) == 61


async def test_a_burst_of_changes_to_a_key_is_derived_once_for_the_last(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watched, "DERIVE_DELAY", 2.0)  # longer than the burst takes on a slow machine
    made: list[tuple[str, bytes]] = []

    def derive(key: str, entry: Entry) -> None:
        made.append((key, entry.value))
        entry.memo = entry.value

    async with running(WatchedPrefix(store, "b/", derive=derive)) as copy:
        assert await copy.caught_up(DEADLINE)
        for i in range(5):  # within DERIVE_DELAY, as a create writes its record
            await store.put("b/vm", str(i).encode())
            await store.put(f"b/other{i}", b"o")
        assert await copy.caught_up(DEADLINE)
        last = copy.get("b/vm")
        assert last is not None
        await until_derived(last)
        for i in range(5):
            other = copy.get(f"b/other{i}")
            assert other is not None
            await until_derived(other)
        assert [v for k, v in made if k == "b/vm"] == [b"4"]  # one derivation, of the latest value
        assert len(made) == 6


async def test_a_flood_of_changes_is_derived_as_it_comes_beyond_the_pending_bound(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watched, "DERIVE_DELAY", 60.0)  # no pass within the test: only the bound derives
    monkeypatch.setattr(watched, "DERIVE_PENDING_MAX", 3)
    made: list[str] = []

    def derive(key: str, entry: Entry) -> None:
        made.append(key)
        entry.memo, entry.value = entry.value, b""

    async with running(WatchedPrefix(store, "f/", derive=derive)) as copy:
        assert await copy.caught_up(DEADLINE)
        await store.commit([Write(f"f/k{i}", b"v") for i in range(10)])  # another writer's records, at once
        assert await copy.caught_up(DEADLINE)
        assert made == [f"f/k{i}" for i in range(7)]  # the oldest, derived as the newer ones came
        waiting = [copy.get(f"f/k{i}") for i in range(7, 10)]
        assert all(e is not None and e.memo is None and e.value == b"v" for e in waiting)  # 3 wait, values kept


async def until_derived(entry: Entry) -> None:
    async with asyncio.timeout(DEADLINE):
        while entry.memo is None:
            await asyncio.sleep(0.01)  # polling the background pass, with a deadline


async def test_an_ordered_copy_pages_a_sub_prefix_in_key_order(store: Store) -> None:
    await store.commit([Write(f"o/{p}/k{i:03d}", b"v") for p in ("a", "b") for i in range(0, 40, 2)])
    async with running(WatchedPrefix(store, "o/", ordered=True)) as copy:
        assert await copy.caught_up(DEADLINE)
        assert copy.keys_after("o/a/", "", 3) == ["o/a/k000", "o/a/k002", "o/a/k004"]
        assert copy.keys_after("o/a/", "o/a/k035", 10) == ["o/a/k036", "o/a/k038"]  # ends with its prefix
        await store.commit([Write("o/a/k003", b"new"), Write("o/a/k002", None), Write("o/b/k001", b"new")])
        assert await copy.caught_up(DEADLINE)
        assert copy.keys_after("o/a/", "o/a/k000", 3) == ["o/a/k003", "o/a/k004", "o/a/k006"]
        assert copy.keys_after("o/b/", "", 2) == ["o/b/k000", "o/b/k001"]
        everything = copy.keys_after("o/", "", 1000)
        assert everything == sorted(copy.entries) and len(everything) == 41
