"""A RunVm's create sent ahead of its claim's commit (`core/vms/ahead.py`, `hypervisor/provisional.py`),
against a real agent running Firecracker from its warm pool: the node boots the VM at once and keeps it
once the word comes (its handle loses the provisional mark, its records are written); a create whose
word never comes — its call cancelled, its request stream ended, or the agent killed while it waited —
leaves nothing on the node (no directory, no process), even across the agent's restart; through the
API, a RunVm whose commit fails (over quota) leaves nothing on the node either; a provisional create
with ports is refused (the node would plumb them before the claim is known)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.core.agents import AgentClient, AgentPool
from plasmavmc.errors import PlasmaError
from plasmavmc.hypervisor.firecracker.pool import POOL_DIR
from plasmavmc.hypervisor.process import read_pidfile
from plasmavmc.hypervisor.provisional import DETAIL
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.vm import HypervisorType, VirtualMachine
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, network_pb2
from plasmavmc.wire.status import from_rpc_error
from tests import binaries
from tests import firecracker_guest as fc
from tests.conftest import Cluster
from tests.e2e.helpers import ORG, PROJECT, until
from tests.e2e.test_firecracker_api import pvh_spec, running_cluster
from tests.e2e.test_run_vm_armed import agent_address, guest_images

pytestmark = [binaries.require(*fc.BINARIES),
              pytest.mark.skipif(fc.capability_missing() is not None, reason=str(fc.capability_missing()))]


@pytest.fixture(scope="module")
def ahead_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory.mktemp("ahead"), guest_dir)


@pytest.fixture
async def agent(ahead_cluster: Cluster) -> AsyncIterator[AgentClient]:
    agents = AgentPool()
    try:
        yield agents.client(Node(id=ahead_cluster.node_id, agent_address=agent_address(ahead_cluster)))
    finally:
        await agents.close()


def runtime(cluster: Cluster) -> Path:
    return cluster.root / "run" / "fc"


def new_vm(cluster: Cluster) -> VirtualMachine:
    return VirtualMachine(id=str(uuid.uuid4()), name=f"ahead-{uuid.uuid4().hex[:8]}", org_id=ORG,
                          project_id=PROJECT, spec=pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                          node_id=cluster.node_id)


def handle_details(cluster: Cluster, vm_id: str) -> dict[str, str] | None:
    try:
        details: dict[str, str] = json.loads((runtime(cluster) / vm_id / "handle.json").read_text())["details"]
    except (OSError, ValueError):
        return None
    return details


def vm_pid(cluster: Cluster, vm_id: str) -> int | None:
    found = [read_pidfile(p) for p in (runtime(cluster) / vm_id).glob("jail/*/*/root/firecracker.pid")]
    return next((pid for pid in found if pid is not None), None)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def booted_ahead(cluster: Cluster, agent: AgentClient, images: list[Image]) -> tuple[VirtualMachine, Any, int]:
    """A create sent ahead, once its VM booted on the node (its console has the guest's line) with its
    handle marked provisional: the VM, the call, its Firecracker's pid."""
    await fc.pool_ready(runtime(cluster))
    vm = new_vm(cluster)
    call = await agent.run_vm_ahead(vm, images)

    async def booted() -> bool:
        console = runtime(cluster) / vm.id / "console.log"
        return console.exists() and fc.READY in console.read_bytes()

    await until(booted, "the VM sent ahead booted before its word")
    assert (handle_details(cluster, vm.id) or {}).get(DETAIL) == "true"
    assert not (runtime(cluster) / vm.id / "vm.json").exists(), "records written before the word"
    pid = vm_pid(cluster, vm.id)
    assert pid is not None and alive(pid)
    return vm, call, pid


def now(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """`check` as `until` polls it."""
    async def checked() -> bool:
        return check()
    return checked


async def gone(cluster: Cluster, agent: AgentClient, vm_id: str, pid: int) -> None:
    await until(now(lambda: not (runtime(cluster) / vm_id).exists()), "the VM's directory removed")
    await until(now(lambda: not alive(pid)), "the VM's Firecracker ended")
    with pytest.raises(PlasmaError) as err:
        await agent.status(vm_id)
    assert err.value.code == "VM_NOT_FOUND"


async def test_committed_create_is_kept(ahead_cluster: Cluster, agent: AgentClient) -> None:
    images = await guest_images(ahead_cluster)
    vm, call, pid = await booted_ahead(ahead_cluster, agent, images)
    seen = bytearray()

    async def early(data: bytes) -> None:
        seen.extend(data)

    try:
        async with asyncio.timeout(30):
            status, console = await agent.run_vm_committed(call, early)
            await console.aclose()
        assert status.host_pid == pid and fc.READY in seen, bytes(seen)
        assert DETAIL not in (handle_details(ahead_cluster, vm.id) or {DETAIL: "missing"})
        assert (runtime(ahead_cluster) / vm.id / "vm.json").exists()
        assert (await agent.status(vm.id)).host_pid == pid
    finally:
        await agent.stop_vm(vm.id, 5, force=True)
        await agent.delete_vm(vm.id)


@pytest.mark.parametrize("how", ["cancelled", "stream ended"])
async def test_create_without_its_word_leaves_nothing(ahead_cluster: Cluster, agent: AgentClient, how: str) -> None:
    images = await guest_images(ahead_cluster)
    vm, call, pid = await booted_ahead(ahead_cluster, agent, images)
    if how == "cancelled":
        call.cancel()
    else:
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.ABORTED, err.value.details()
    await gone(ahead_cluster, agent, vm.id, pid)
    await fc.pool_ready(runtime(ahead_cluster))  # the node goes on: its pool refills


async def test_agent_killed_before_the_word_removes_the_vm_at_restart(
        ahead_cluster: Cluster, agent: AgentClient) -> None:
    images = await guest_images(ahead_cluster)
    vm, call, pid = await booted_ahead(ahead_cluster, agent, images)
    ahead_cluster.agent.kill()
    call.cancel()
    assert alive(pid), "the VM's Firecracker outlives the agent (as every VM does)"
    assert (handle_details(ahead_cluster, vm.id) or {}).get(DETAIL) == "true"
    ahead_cluster.agent.start()
    await asyncio.to_thread(ahead_cluster.wait_agent_ready, 30)
    await gone(ahead_cluster, agent, vm.id, pid)
    assert "its provisional create was never confirmed" in ahead_cluster.agent.log.read_text()


async def test_run_vm_whose_commit_fails_leaves_nothing_on_the_node(ahead_cluster: Cluster) -> None:
    project = "ahead-quota"
    async with await PlasmaClient.connect(ahead_cluster.api) as client:
        await client.set_quota(ORG, project, ResourceLimits(max_vms=1))
        kept = await client.create_vm("kept", ORG, project, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER)
        await fc.pool_ready(runtime(ahead_cluster))
        log = ahead_cluster.agent.log
        before = log.read_text().count("ended before the word of its claim: removed")
        with pytest.raises(PlasmaError) as err:
            async for _ in client.run_vm("over", ORG, project, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER):
                pass
        assert err.value.code == "QUOTA_EXCEEDED"
        # it went ahead (the quota is the commit's to check) and the node removed it
        await until(now(lambda: log.read_text().count("ended before the word of its claim: removed") > before),
                    "the node removed the VM sent ahead")
        await until(now(lambda: {p.name for p in runtime(ahead_cluster).iterdir()} <= {POOL_DIR, kept.id}),
                    "nothing but the pool and the kept VM in the node's runtime dir")
        vms, _ = await client.list_vms(ORG, project)
        assert [v.name for v in vms] == ["kept"]
        await client.delete_vm(ORG, project, kept.id, force=True)


async def test_provisional_create_with_ports_is_refused(ahead_cluster: Cluster) -> None:
    async with grpc.aio.insecure_channel(agent_address(ahead_cluster)) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).RunVm()
        await call.write(agent_pb2.CreateVmRequest(provisional=True, ports=[network_pb2.NetworkPort(port_id="p1")]))
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
    error = from_rpc_error(err.value)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error.field == "ports", err.value.details()
