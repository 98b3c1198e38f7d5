"""A heartbeat that changes nothing is a liveness stamp (`NodeRegistry.heartbeat`): the same report
against the record at the same revision writes nothing and merges nothing, and is still seen alive;
whatever changed the record since (a NOT_READY mark, a cordon, a claim) or the report (a new object,
as a changed node gives) goes through the merge again, so a node marked NOT_READY that heartbeats is
READY again and an administrator's cordon survives heartbeats."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from plasmavmc.core.nodes import registry as registry_module
from plasmavmc.core.nodes.registry import NodeRegistry
from plasmavmc.store.records import replace
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.node import Node, NodeCapacity, NodeState

REPORTED = Node(id="st-1", capacity=NodeCapacity(4, 8192, 100), allocatable=NodeCapacity(4, 8192, 100))


def _no_merge(*args: object) -> Node:
    raise AssertionError("an unchanged heartbeat was merged")


async def test_an_unchanged_heartbeat_is_a_stamp_and_a_change_is_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        nodes = NodeRegistry(store, 1)
        nodes.liveness.leading = True
        await nodes.heartbeat(REPORTED)
        await nodes.heartbeat(REPORTED)  # found unchanged by a merge: remembered
        revision = await store.revision()
        before = nodes.liveness.last_seen(REPORTED)
        with monkeypatch.context() as patched:
            patched.setattr(registry_module, "_merge", _no_merge)
            for _ in range(3):
                node = await nodes.heartbeat(REPORTED)
                assert node.state == NodeState.READY
        assert await store.revision() == revision  # nothing written
        assert nodes.liveness.last_seen(REPORTED) >= before  # but stamped

        # silent past the timeout: NOT_READY; the same report then makes it READY again
        deadline = time.monotonic() + 30
        while not (await nodes.expire())[0]:  # the timeout is 1 s: polled with a deadline
            assert time.monotonic() < deadline, "the silent node was never marked NOT_READY"
            await asyncio.sleep(0.1)
        assert (await nodes.get(REPORTED.id)).value.state == NodeState.NOT_READY
        assert (await nodes.heartbeat(REPORTED)).state == NodeState.READY
        assert (await nodes.get(REPORTED.id)).value.state == NodeState.READY

        # a cordon is kept through the same report's heartbeats
        await nodes.set_admin_state(REPORTED.id, NodeState.CORDONED)
        await nodes.cache.refresh(REPORTED.id)
        for _ in range(2):
            assert (await nodes.heartbeat(REPORTED)).state == NodeState.CORDONED

        # a changed report (a new object) is merged into the record
        grown = replace(REPORTED, capacity=NodeCapacity(8, 8192, 100))
        assert (await nodes.heartbeat(grown)).capacity.vcpus == 8
        assert (await nodes.get(REPORTED.id)).value.capacity.vcpus == 8
    finally:
        await store.close()
