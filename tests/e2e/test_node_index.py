"""The per-node index of VMs (`VmStates.keys_on`) against the store's truth, on SQLite and etcd.

A real server with SIMULATED agents creates, deletes and moves (drains) VMs; an index following the same
store from this process must name, for every node, exactly the VMs a scan of the assignment records
names (`health.vm_keys_on` without an index), after each step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.nodes import health
from plasmavmc.store.base import Store
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.node import Node, NodeCapacity
from tests.e2e.simulated import SIM, NodeSpec, SimCluster, sim_cluster, sim_spec, until
from tests.etcd import EtcdCluster, needs_etcd

ORG, PROJECT = "org-i", "proj-i"
CAP = NodeCapacity(32, 128 * 1024, 2000)
NODES = ("sim-a", "sim-b", "sim-c")
SPECS: list[NodeSpec] = [(n, CAP, {"pool": n}) for n in NODES]


@asynccontextmanager
async def cluster_and_store(root: Path, guest: Path, backend: str) -> AsyncIterator[tuple[SimCluster, Store]]:
    if backend == "sqlite":
        async with sim_cluster(root, guest, SPECS) as c:
            store: Store = await SqliteStore.open(root / "state.db", poll_interval=0.05)
            try:
                yield c, store
            finally:
                await store.close()
        return
    etcd = EtcdCluster.start(root / "etcd")
    try:
        endpoints = ", ".join(f'"{u}"' for u in etcd.endpoints)
        toml = f'[store]\nbackend = "etcd"\nendpoints = [{endpoints}]\nlease_ttl_seconds = 3\n'
        async with sim_cluster(root, guest, SPECS, store_toml=toml) as c:
            store = await EtcdStore.open(etcd.endpoints)
            try:
                yield c, store
            finally:
                await store.close()
    finally:
        etcd.stop()


async def agrees(store: Store, index: VmStates) -> None:
    """Until the index names, for every node, the VMs the assignment scan names (and some VM at all)."""

    async def both() -> list[tuple[list[str] | None, list[str]]]:
        return [(index.keys_on({n}), sorted(await health.vm_keys_on(store, n))) for n in NODES]

    await until(both, lambda pairs: all(i == s for i, s in pairs), 20, "index = assignment scan")


@pytest.mark.parametrize("backend", [pytest.param("sqlite"), pytest.param("etcd", marks=needs_etcd)])
async def test_per_node_index_follows_create_delete_and_move(tmp_path: Path, guest_dir: Path, backend: str) -> None:
    async with cluster_and_store(tmp_path, guest_dir, backend) as (c, store):
        index = VmStates(store, 0.5)
        follow = asyncio.create_task(index.run())
        try:
            for n in ("sim-b", "sim-c"):
                await c.client.cordon_node(n)
            vms = [await c.client.create_vm(f"v{i}", ORG, PROJECT, sim_spec(), SIM) for i in range(3)]
            await c.client.uncordon_node("sim-b")
            await c.client.cordon_node("sim-a")
            vms += [await c.client.create_vm(f"w{i}", ORG, PROJECT, sim_spec(), SIM) for i in range(3)]
            assert [v.node_id for v in vms] == ["sim-a"] * 3 + ["sim-b"] * 3
            await agrees(store, index)
            assert len(index.keys_on({"sim-a"}) or []) == 3 and index.keys_on({"sim-c"}) == []
            await c.client.delete_vm(ORG, PROJECT, vms[0].id)
            await agrees(store, index)
            assert len(index.keys_on({"sim-a"}) or []) == 2
            await c.client.cordon_node("sim-b")
            await c.client.uncordon_node("sim-c")
            await c.client.drain_node("sim-a", allow_disk_loss=True)  # moves both to sim-c

            def drained(n: Node) -> bool:
                return any(k.type == "Drain" and k.status for k in n.conditions)

            await until(lambda: c.client.get_node("sim-a"), drained, 30, "drain complete")
            await agrees(store, index)
            assert index.keys_on({"sim-a"}) == [] and len(index.keys_on({"sim-c"}) or []) == 2
            assert len(index.keys_on(set(NODES)) or []) == 5
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
