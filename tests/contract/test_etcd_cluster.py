"""A real 3-member etcd cluster on loopback: killing a member mid-load loses no acknowledged write, and
a watch connected to the killed member resumes on another one without a gap or a repeat.

A put whose reply was lost with the member is retried by the writer (an unconditional put is
idempotent), so a key may be written twice; "no loss" means every acknowledged value is stored and seen.

The store's first endpoint is the member that gets killed, so both the writers and the watch are
connected to it when it dies and must fail over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from plasmavmc.errors import StoreError
from plasmavmc.store.base import WatchEvent
from plasmavmc.store.etcd import EtcdStore
from tests.etcd import EtcdCluster, needs_etcd

pytestmark = needs_etcd

DEADLINE = 30.0
WRITERS = 4
WRITES_EACH = 60
KILL_AFTER = 40  # acknowledged writes before the member is killed


@pytest.fixture
def three(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path / "etcd", members=3)
    try:
        yield cluster
    finally:
        cluster.stop()


async def _writer(store: EtcdStore, n: int, acked: dict[str, bytes], started: asyncio.Event) -> None:
    for i in range(WRITES_EACH):
        key, value = f"load/{n}/{i:03d}", f"{n}:{i}".encode()
        while True:
            try:
                await store.put(key, value)
                break
            except StoreError as exc:
                if not exc.retryable:
                    raise
                # the cluster is electing a new leader: the write was not acknowledged, try again
        acked[key] = value
        if len(acked) >= KILL_AFTER:
            started.set()


async def _collect(store: EtcdStore, start: int, into: list[WatchEvent], changed: asyncio.Condition) -> None:
    async for event in store.watch("load/", start):
        async with changed:
            into.append(event)
            changed.notify_all()


async def test_killed_member_loses_no_acknowledged_write(three: EtcdCluster) -> None:
    store = await EtcdStore.open(three.endpoints, timeout=3.0)
    watcher = await EtcdStore.open(three.endpoints, timeout=3.0)
    try:
        start = await store.revision() + 1
        acked: dict[str, bytes] = {}
        started, changed = asyncio.Event(), asyncio.Condition()
        events: list[WatchEvent] = []
        total = WRITERS * WRITES_EACH
        watch = asyncio.ensure_future(_collect(watcher, start, events, changed))
        try:
            writers = asyncio.gather(*(_writer(store, n, acked, started) for n in range(WRITERS)))
            await asyncio.wait_for(started.wait(), DEADLINE)
            three.kill(0)  # mid-load: both handles are talking to member 0
            await asyncio.wait_for(writers, DEADLINE)
            async with changed:  # a write retried after a lost reply shows up twice: wait for every key
                await asyncio.wait_for(changed.wait_for(lambda: {e.key for e in events} >= acked.keys()), DEADLINE)
        finally:
            watch.cancel()

        assert len(acked) == total
        survivor = await EtcdStore.open(three.endpoints[1:], timeout=3.0)
        try:
            stored = {kv.key: kv.value for kv in await survivor.list_all("load/")}
        finally:
            await survivor.close()
        assert stored == acked

        revisions = [e.revision for e in events]
        assert revisions == sorted(set(revisions)), "the resumed watch repeated or reordered events"
        assert {e.key: e.value for e in events} == acked  # every write seen, none lost across the kill
        assert len(events) >= total
    finally:
        await store.close()
        await watcher.close()
