"""`VmStates.settled_on`: the VMs of a node whose heartbeat reports can be skipped unread (neither RUNNING
nor ERROR), only once the index is built and holds every VM write this process made (its fence).
Real SQLite store, real index (list then watch)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.states import VmState
from tests.core_harness import vm_record

DEADLINE = 10.0


async def _until(check: object, deadline: float = DEADLINE) -> None:
    async with asyncio.timeout(deadline):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)  # polling this process's own index, with a deadline


async def test_settled_vms_are_the_nodes_vms_no_report_changes(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    store.track_writes(keys.VMS)
    try:
        writes = [vm_record(VmState.STOPPED, "n1"), vm_record(VmState.CREATING, "n1"), vm_record(VmState.RUNNING, "n1"),
                  vm_record(VmState.ERROR, "n1"), vm_record(VmState.STOPPED, "n2")]
        await store.commit(writes)
        ids = [w.key.rpartition("/")[2] for w in writes]
        index = VmStates(store, 0.1)
        assert index.settled_on("n1", store.fence(keys.VMS)) == frozenset()  # not built: nothing is skipped
        task = asyncio.create_task(index.run())
        try:
            assert await index.until_ready(DEADLINE)
            assert index.settled_on("n1", store.fence(keys.VMS)) == {ids[0], ids[1]}
            assert index.settled_on("n2", store.fence(keys.VMS)) == {ids[4]}
            assert index.settled_on("n1", index.revision + 1) == frozenset()  # behind a newer write: nothing
            running = vm_record(VmState.RUNNING, "n1")
            await store.commit([running, vm_record(VmState.STOPPED, "n1")])
            await _until(lambda: index.revision >= store.fence(keys.VMS))
            assert running.key.rpartition("/")[2] not in index.settled_on("n1", store.fence(keys.VMS))
            assert len(index.settled_on("n1", store.fence(keys.VMS))) == 3
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await store.close()
