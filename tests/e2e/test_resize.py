"""Resize through the real server, agent and QEMU (issue 15 item 5): a stopped VM grown from 1 to 2 vCPUs,
256 to 512 MiB and a 1 to 2 GiB disk shows all three in the guest after its start; a running VM is
refused naming its state; a resize beyond the node's room or the quota, and a shrink, are refused with
nothing changed (VM spec, node allocation, quota usage); the agent's port checks the same fields."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tomllib
from collections.abc import AsyncIterator

import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import InvalidArgument, InvalidState, NoSuitableNode, QuotaExceeded
from plasmavmc.types.events import VmEventType
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import RestartPolicy, VirtualMachine, VmResize
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, vm_pb2
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, console_until, shell_run, tiny_spec

pytestmark = needs_qemu
GIB = 1024**3
RESIZE_PROJECT = "proj-resize"  # its own project: the quota test sets limits on it


async def _facts(cluster: Cluster, vm: VirtualMachine) -> tuple[int, int, int]:
    """(vCPUs, MemTotal kB, size of /dev/vda in bytes) as the guest sees them."""
    out = await shell_run(cluster, vm.id, "nproc; sed -n 's/MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo; "
                                          "cat /sys/block/vda/size")
    cpus, mem_kb, sectors = (int(x) for x in out.split())
    return cpus, mem_kb, sectors * 512


async def _boot(client: PlasmaClient, vm: VirtualMachine, nth: int = 1) -> None:
    """Start the VM and wait for its `nth` readiness line (the console keeps earlier boots' output)."""
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, f"PLASMAVMC-READY name={vm.name} ", count=nth, timeout=180)


async def test_grown_vm_shows_it_in_the_guest(client: PlasmaClient, cluster: Cluster) -> None:
    vm = await client.create_vm("grow-1", ORG, PROJECT, tiny_spec(memory_mib=256, vcpus=1))
    await _boot(client, vm)
    cpus, mem_kb, disk = await _facts(cluster, vm)
    assert (cpus, disk) == (1, GIB) and mem_kb < 256 * 1024, (cpus, mem_kb, disk)

    with pytest.raises(InvalidState, match="RUNNING"):  # FAILED_PRECONDITION naming the state
        await client.update_vm(ORG, PROJECT, vm.id, resize=VmResize(vcpus=2))
    await client.stop_vm(ORG, PROJECT, vm.id)
    await client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 60)

    grown = await client.update_vm(ORG, PROJECT, vm.id,
                                   resize=VmResize(vcpus=2, memory_mib=512, disk_sizes={"root": 2}))
    assert (grown.spec.cpu.vcpus, grown.spec.memory.size_mib, grown.spec.disks[0].size_gib) == (2, 512, 2)
    await _boot(client, vm, nth=2)
    cpus, mem_kb, disk = await _facts(cluster, vm)
    assert cpus == 2 and 256 * 1024 < mem_kb <= 512 * 1024 and disk == 2 * GIB, (cpus, mem_kb, disk)

    events = [e async for e in client.vm_events(ORG, PROJECT, vm.id)]
    resized = [e for e in events if e.type is VmEventType.UPDATED and e.reason == "Resized"]
    assert len(resized) == 1 and "vcpus 1 -> 2" in resized[0].message, [(e.reason, e.message) for e in events]
    assert "memory 256 -> 512 MiB" in resized[0].message and "disk root 1 -> 2 GiB" in resized[0].message
    await client.delete_vm(ORG, PROJECT, vm.id, force=True)


@pytest.fixture
async def stopped(client: PlasmaClient) -> AsyncIterator[VirtualMachine]:
    spec = tiny_spec()
    spec = dataclasses.replace(spec, disks=(dataclasses.replace(spec.disks[0], size_gib=2),))
    vm = await client.create_vm("grow-refused", ORG, RESIZE_PROJECT, spec)
    yield vm
    await client.delete_vm(ORG, RESIZE_PROJECT, vm.id, force=True)


async def _snapshot(client: PlasmaClient, cluster: Cluster, vm: VirtualMachine) -> tuple[object, ...]:
    """What a refused resize must leave as it was."""
    now = await client.get_vm(ORG, RESIZE_PROJECT, vm.id)
    node = await client.get_node(cluster.node_id)
    return (now.spec, now.updated_at, node.allocated, (await client.get_quota(ORG, RESIZE_PROJECT)).usage,
            (await client.get_quota(ORG)).usage)


async def test_refused_resizes_change_nothing(client: PlasmaClient, cluster: Cluster,
                                              stopped: VirtualMachine) -> None:
    before = await _snapshot(client, cluster, stopped)
    node = await client.get_node(cluster.node_id)
    free = node.allocatable - node.allocated
    with pytest.raises(NoSuitableNode, match="vCPU"):
        await client.update_vm(ORG, RESIZE_PROJECT, stopped.id, resize=VmResize(vcpus=1 + free.vcpus + 1))
    with pytest.raises(NoSuitableNode, match="memory"):
        await client.update_vm(ORG, RESIZE_PROJECT, stopped.id,
                               resize=VmResize(memory_mib=256 + free.memory_mib + 1))
    assert await _snapshot(client, cluster, stopped) == before

    with pytest.raises(InvalidArgument) as shrink:
        await client.update_vm(ORG, RESIZE_PROJECT, stopped.id, resize=VmResize(disk_sizes={"root": 1}))
    assert shrink.value.field == "disk_sizes[root].size_gib", shrink.value
    bad = [(VmResize(vcpus=1000), "vcpus"), (VmResize(memory_mib=1), "memory_mib"),
           (VmResize(disk_sizes={"nope": 3}), "disk_sizes[nope].disk_id"),
           (VmResize(disk_sizes={"root": 0}), "disk_sizes[root].size_gib")]
    for change, field in bad:
        with pytest.raises(InvalidArgument) as refused:
            await client.update_vm(ORG, RESIZE_PROJECT, stopped.id, resize=change)
        assert refused.value.field == field, (change, refused.value)
    assert await _snapshot(client, cluster, stopped) == before

    await client.set_quota(ORG, RESIZE_PROJECT, ResourceLimits(max_vcpus=1))
    try:
        with pytest.raises(QuotaExceeded):
            await client.update_vm(ORG, RESIZE_PROJECT, stopped.id, resize=VmResize(vcpus=2))
        assert await _snapshot(client, cluster, stopped) == before
    finally:
        await client.set_quota(ORG, RESIZE_PROJECT, ResourceLimits(max_vcpus=10_000))


async def test_agent_port_checks_the_resize_too(client: PlasmaClient, cluster: Cluster,
                                                stopped: VirtualMachine) -> None:
    addr = tomllib.loads((cluster.root / "agent.toml").read_text())["agent"]["addr"]
    async with grpc.aio.insecure_channel(addr) as channel:
        agent = agent_pb2_grpc.AgentServiceStub(channel)
        for request, field in (
            (agent_pb2.ResizeVmRequest(vm_id=stopped.id, vcpus=1000), "vcpus"),
            (agent_pb2.ResizeVmRequest(vm_id=stopped.id, disk_sizes=[vm_pb2.DiskSize(disk_id="root", size_gib=1)]),
             "disk_sizes[root].size_gib"),
            (agent_pb2.ResizeVmRequest(vm_id=stopped.id, disk_sizes=[vm_pb2.DiskSize(disk_id="../x", size_gib=3)]),
             "disk_sizes.disk_id"),
            (agent_pb2.ResizeVmRequest(vm_id="not-a-uuid", vcpus=2), "vm_id"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await agent.ResizeVm(request)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
            assert field in (refused.value.details() or ""), refused.value.details()
    vm = await client.get_vm(ORG, RESIZE_PROJECT, stopped.id)
    assert vm.spec == stopped.spec


async def _cli(cluster: Cluster, *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plasmavmc.cli", "--addr", cluster.api, "--org", ORG, "--project", RESIZE_PROJECT,
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_resize_grow_disk_and_restart_policy(client: PlasmaClient, cluster: Cluster,
                                                       stopped: VirtualMachine) -> None:
    code, _, err = await _cli(cluster, "vm", "resize", stopped.name, "--vcpus", "2", "--memory-mib", "384")
    assert code == 0, err
    code, _, err = await _cli(cluster, "vm", "grow-disk", stopped.name, "root", "--size-gib", "3")
    assert code == 0, err
    code, _, err = await _cli(cluster, "vm", "update", stopped.name, "--restart-policy", "on-failure")
    assert code == 0, err
    vm = await client.get_vm(ORG, RESIZE_PROJECT, stopped.id)
    assert (vm.spec.cpu.vcpus, vm.spec.memory.size_mib, vm.spec.disks[0].size_gib) == (2, 384, 3)
    assert vm.spec.restart_policy is RestartPolicy.ON_FAILURE
    code, out, _ = await _cli(cluster, "vm", "get", stopped.name)
    assert code == 0 and "on-failure" in out, out
    code, _, err = await _cli(cluster, "vm", "grow-disk", stopped.name, "root", "--size-gib", "1")
    assert code == 1 and "INVALID_ARGUMENT" in err and "disk_sizes[root].size_gib" in err, err
    code, _, err = await _cli(cluster, "vm", "resize", stopped.name)
    assert code == 2 and "--vcpus" in err, err
