"""The incremental reconcile pass (from the watched index) converges to what the full pass does.

Two cores on the in-process harness (tests/core_harness.py; real store, real core, in-memory agents),
each on its own real store (SQLite files, or two namespaces of one real etcd), go through the same
steps: eight VMs are created, five deleted while their node's agent does not answer (the records stay
DELETED for the reconcile to finish). One core is reconciled only by `reconcile_indexed`, the other only
by `reconcile_once`; both must end with the same VMs, node allocation, quota usage and agent state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.loops.reconcile import reconcile_indexed, reconcile_once
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.quotas import get as get_quota
from plasmavmc.core.vms import lifecycle
from plasmavmc.errors import Unavailable
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, HypervisorType, MemorySpec, VmSpec
from tests.core_harness import IMAGE, FakeAgent, FakeAgentPool, add_image, add_node, make_core
from tests.etcd import EtcdCluster, needs_etcd

ORG, PROJ, NODE = "org-r", "proj-r", "node-r"
SPEC = VmSpec(cpu=CpuSpec(vcpus=1), memory=MemorySpec(size_mib=256),
              disks=(DiskSpec(id="root", source=DiskSource(image_id=IMAGE), size_gib=1),))


class FlakyAgent(FakeAgent):
    """An agent whose DeleteVm does not answer while `down`."""

    down = False

    async def DeleteVm(self, request: Any, timeout: float | None = None) -> Any:
        if self.down:
            raise Unavailable(f"node {self.node_id} does not answer")
        return await super().DeleteVm(request, timeout)


@contextlib.asynccontextmanager
async def two_stores(tmp_path: Path, backend: str) -> AsyncIterator[tuple[Store | None, Store | None]]:
    if backend == "sqlite":
        yield None, None
        return
    etcd = EtcdCluster.start(tmp_path / "etcd")
    try:
        first = await EtcdStore.open(etcd.endpoints, namespace="indexed/")
        second = await EtcdStore.open(etcd.endpoints, namespace="full/")
        yield first, second
    finally:
        etcd.stop()


async def prepared(root: Path, store: Store | None) -> tuple[Core, FlakyAgent]:
    root.mkdir()
    core = await make_core(root, store)
    assert isinstance(core.agents, FakeAgentPool)
    agent = core.agents.agents[NODE] = FlakyAgent(NODE)
    await add_node(core, NODE)
    await add_image(core, "harness-kernel")
    await add_image(core, IMAGE, kernel_id="harness-kernel")
    vms = [await lifecycle.create(core, lifecycle.CreateVm(f"v{i}", ORG, PROJ, SPEC, HypervisorType.KVM, {}, {}))
           for i in range(8)]
    agent.down = True
    for vm in vms[:5]:
        await lifecycle.delete(core, VmRef(ORG, PROJ, vm.id), force=False)
    agent.down = False
    return core, agent


async def outcome(core: Core, agent: FakeAgent) -> tuple[Any, ...]:
    names = sorted(kv.key.rsplit("/", 1)[-1] for kv in await core.store.list_all(keys.NAMES))
    states = sorted(str(kv.value) for kv in await core.store.list_all(keys.VMS))
    node = (await core.nodes.get(NODE)).value
    usage = (await get_quota(core.store, ORG, PROJ)).usage
    return names, len(states), node.allocated, usage.vms, usage.vcpus, len(agent.vms)


async def converge(step: Callable[[], Awaitable[None]], core: Core) -> None:
    deadline = time.monotonic() + 30
    while any(b'"deleted"' in kv.value for kv in await core.store.list_all(keys.VMS)):
        assert time.monotonic() < deadline, "DELETED records left after 30 s of passes"
        await step()
        await asyncio.sleep(0.2)  # the records become due DELETE_GRACE seconds after the delete


@pytest.mark.parametrize("backend", [pytest.param("sqlite"), pytest.param("etcd", marks=needs_etcd)])
async def test_indexed_reconcile_converges_like_the_full_pass(tmp_path: Path, backend: str) -> None:
    async with two_stores(tmp_path, backend) as (first, second):
        indexed, agent_i = await prepared(tmp_path / "indexed", first)
        full, agent_f = await prepared(tmp_path / "full", second)
        assert len(agent_i.vms) == len(agent_f.vms) == 8  # the deletes could not reach the agent
        index = VmStates(indexed.store, 0.5)
        follow = asyncio.create_task(index.run())
        try:
            await converge(lambda: reconcile_indexed(indexed, index), indexed)
            await converge(lambda: reconcile_once(full), full)
            assert await outcome(indexed, agent_i) == await outcome(full, agent_f)
            names, records, allocated, vms, vcpus, on_agent = await outcome(indexed, agent_i)
            assert (names, records, vms, vcpus, on_agent) == (["v5", "v6", "v7"], 3, 3, 3, 3)
            assert allocated.vcpus == 3
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
            await indexed.store.close()
            await full.store.close()
