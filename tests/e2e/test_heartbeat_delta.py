"""Delta heartbeats through a real server (SQLite and etcd) with SIMULATED agents (nothing boots here).

A heartbeat carries only the VM reports that changed, with the digest of the whole list; the server
checks the digest against its copy and answers `resync` on a mismatch. A delta lost on the way (the
agent thinks it was delivered) is healed by that resync; a restarted server (no copy) and a restarted
agent (nothing acknowledged: its first heartbeat is full) are re-synced; bad delta fields are refused
with INVALID_ARGUMENT naming the field, before anything is written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from plasmavmc.agent.heartbeats import DeltaState
from plasmavmc.agent.reporter import vm_report
from plasmavmc.errors import InvalidArgument, NodeNotFound
from plasmavmc.types.node import NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.v1 import agent_pb2
from tests.e2e.simulated import SIM, NodeSpec, SimCluster, sim_cluster, sim_spec, until
from tests.etcd import EtcdCluster, needs_etcd

T = TypeVar("T")
ORG, PROJECT = "org-d", "proj-d"
CAP = NodeCapacity(64, 256 * 1024, 4000)
NODE = "sim-d"


@asynccontextmanager
async def cluster(root: Path, guest: Path, store: str) -> AsyncIterator[SimCluster]:
    specs: list[NodeSpec] = [(NODE, CAP, {})]
    if store == "sqlite":
        async with sim_cluster(root, guest, specs, heartbeat_interval=0.3) as c:
            yield c
        return
    etcd = EtcdCluster.start(root / "etcd")
    try:
        endpoints = ", ".join(f'"{u}"' for u in etcd.endpoints)
        toml = f'[store]\nbackend = "etcd"\nendpoints = [{endpoints}]\nlease_ttl_seconds = 3\n'
        async with sim_cluster(root, guest, specs, heartbeat_interval=0.3, store_toml=toml) as c:
            yield c
    finally:
        etcd.stop()


STORES = [pytest.param("sqlite"), pytest.param("etcd", marks=needs_etcd)]


async def running_vms(c: SimCluster, count: int) -> list[str]:
    ids = []
    for i in range(count):
        vm = await c.client.create_vm(f"d{i}", ORG, PROJECT, sim_spec(), SIM)
        await c.client.start_vm(ORG, PROJECT, vm.id)
        ids.append(vm.id)
    return ids


async def deltas_flow(c: SimCluster, at_least: int = 2) -> DeltaState:
    """Until the node has had `at_least` deltas accepted in a row."""
    return await until(
        lambda: asyncio.sleep(0, c.fleet.deltas.get(NODE)),
        lambda s: s is not None and s.since_full >= at_least,
        60,
        "deltas accepted",
    )  # type: ignore[return-value]


@pytest.mark.parametrize("store", STORES)
async def test_lost_delta_is_healed_by_resync(tmp_path: Path, guest_dir: Path, store: str) -> None:
    async with cluster(tmp_path, guest_dir, store) as c:
        ids = await running_vms(c, 3)
        state = await deltas_flow(c)
        assert state.resyncs == 0
        c.fleet.pause(NODE)
        await asyncio.wait_for(c.fleet.quiet(NODE), 30)  # a heartbeat on its way would acknowledge its own digest
        state.since_full = 0  # what follows is a delta, whatever the count towards the periodic full one was
        # the hypervisor of one VM is gone, and neither the exit report nor the delta saying so arrives
        backend = c.fleet.backends[NODE]
        backend._vms[ids[0]].running = False
        statuses = {v: await c.fleet.vms.status(v) for v in c.fleet.vms.vms_on(NODE)}
        request, current = state.request(statuses)
        assert request.delta and ids[0] in [r.vm_id for r in request.vms]
        state.answered(request, current, resync=False)  # the agent believes it was delivered
        before = state.resyncs
        c.fleet.resume(NODE)
        # the next delta carries no change but a digest the server's copy does not match: resync, then
        # a full heartbeat with the STOPPED report moves the record out of RUNNING
        lost = await until(lambda: c.client.get_vm(ORG, PROJECT, ids[0]), lambda v: v.state == VmState.STOPPED,
                           60, "the lost report applied")
        assert "gone" in (lost.status.last_error or "")
        assert state.resyncs > before
        for vm_id in ids[1:]:
            assert (await c.client.get_vm(ORG, PROJECT, vm_id)).state == VmState.RUNNING
        assert (await c.client.get_node(NODE)).state == NodeState.READY


@pytest.mark.parametrize("store", STORES)
async def test_restarted_server_and_agent_are_resynced(tmp_path: Path, guest_dir: Path, store: str) -> None:
    async with cluster(tmp_path, guest_dir, store) as c:
        ids = await running_vms(c, 2)
        state = await deltas_flow(c)
        state.full_every = 10**6  # no periodic full heartbeat: the one after the restart is a delta
        c.server.stop()
        c.server.start()  # no copy of the node's digest: its first delta is answered `resync`
        await until(lambda: asyncio.sleep(0, state.resyncs), lambda n: n >= 1, 60, "a resync after the restart")
        await deltas_flow(c)
        resyncs = state.resyncs
        c.fleet.deltas.clear()  # the agent restarts: nothing acknowledged, so its first heartbeat is full
        fresh = await deltas_flow(c)
        assert fresh is not state and fresh.resyncs == 0 and state.resyncs == resyncs
        for vm_id in ids:
            assert (await c.client.get_vm(ORG, PROJECT, vm_id)).state == VmState.RUNNING
        assert (await c.client.get_node(NODE)).state == NodeState.READY


async def test_bad_delta_fields_are_refused_before_any_write(tmp_path: Path, guest_dir: Path) -> None:
    async with cluster(tmp_path, guest_dir, "sqlite") as c:
        [vm_id] = await running_vms(c, 1)
        ghost = c.fleet.nodes[NODE].__class__(**{**c.fleet.nodes[NODE].__dict__, "id": "ghost", "name": "ghost"})
        report = vm_report(vm_id, await c.fleet.vms.status(vm_id))
        cases = {
            "gone_vm_ids": agent_pb2.HeartbeatRequest(vms=[report], gone_vm_ids=[str(uuid.uuid4())]),  # full
            "gone_vm_ids[0]": agent_pb2.HeartbeatRequest(delta=True, gone_vm_ids=["not-a-uuid"], vm_count=0),
            "vms[1]": agent_pb2.HeartbeatRequest(vms=[report, report], vm_count=2),
            "vm_count": agent_pb2.HeartbeatRequest(delta=True, vms=[report], vm_count=0),
            "vms[0].vm_id": agent_pb2.HeartbeatRequest(
                vms=[agent_pb2.VmReport(vm_id=vm_id.upper(), status=report.status)]
            ),
        }
        for field, request in cases.items():
            with pytest.raises(InvalidArgument) as err:
                await c.fleet.reporter.heartbeat(ghost, request)
            assert err.value.field == field, (field, err.value)
        with pytest.raises(NodeNotFound):
            await c.client.get_node("ghost")  # nothing was registered
        answer = await c.fleet.reporter.heartbeat(ghost, agent_pb2.HeartbeatRequest(delta=True, digest=1, vm_count=1))
        assert answer.resync  # a delta from a node this server has no copy for
