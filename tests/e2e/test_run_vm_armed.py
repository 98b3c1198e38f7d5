"""RunVm calls opened ahead of their create (`core/armed.py`), from the control plane's own agent client to
a real agent running Firecracker: the next RunVm of a node goes out on the call opened after the last
one and boots its guest; an armed call that gets no create ends with no reply; the agent's stop ends an
armed call at once (it does not hold the stop for the gRPC grace period), and the RunVm after the agent
came back goes out on a new call and boots its guest too."""

from __future__ import annotations

import asyncio
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.core.agents import AgentClient, AgentPool
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node
from plasmavmc.types.vm import HypervisorType, VirtualMachine
from plasmavmc.v1 import agent_pb2_grpc
from tests import binaries
from tests import firecracker_guest as fc
from tests.conftest import Cluster
from tests.e2e.helpers import ORG, PROJECT, until
from tests.e2e.test_firecracker_api import IMAGE, pvh_spec, running_cluster

pytestmark = [binaries.require(*fc.BINARIES),
              pytest.mark.skipif(fc.capability_missing() is not None, reason=str(fc.capability_missing()))]


@pytest.fixture(scope="module")
def armed_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory.mktemp("armed"), guest_dir)


def agent_address(cluster: Cluster) -> str:
    return str(tomllib.loads((cluster.root / "agent.toml").read_text())["agent"]["addr"])


@pytest.fixture
async def pool() -> AsyncIterator[AgentPool]:
    agents = AgentPool()
    try:
        yield agents
    finally:
        await agents.close()


async def guest_images(cluster: Cluster) -> list[Image]:
    """The PVH guest's disk image with its kernel and initrd, as the control plane sends them."""
    async with await PlasmaClient.connect(cluster.api) as client:
        disk = await client.get_image(ORG, IMAGE)
        return [disk, *[await client.get_image(ORG, disk.metadata[m]) for m in ("kernel_id", "ramdisk_id")]]


async def run_to_line(agent: AgentClient, images: list[Image]) -> None:
    """One RunVm through `agent` until the guest's ready line, then the VM stopped and deleted on the node."""
    vm = VirtualMachine(id=str(uuid.uuid4()), name=f"armed-{uuid.uuid4().hex[:8]}", org_id=ORG,
                        project_id=PROJECT, spec=pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                        node_id=agent.node.id)
    seen = bytearray()

    async def early(data: bytes) -> None:
        seen.extend(data)

    try:
        async with asyncio.timeout(30):
            status, console = await agent.run_vm(vm, images, (), early)
            assert status.host_pid
            try:
                while fc.READY not in seen:  # the line may have come before the status (`early`)
                    seen.extend(await anext(console))
            finally:
                await console.aclose()
        assert fc.READY in seen, bytes(seen)
    finally:
        await agent.stop_vm(vm.id, 5, force=True)
        await agent.delete_vm(vm.id)


async def armed_now(agent: AgentClient) -> bool:
    return agent.armed is not None and agent.armed.armed


async def test_next_run_vm_goes_out_on_the_armed_call(armed_cluster: Cluster, pool: AgentPool) -> None:
    node = Node(id=armed_cluster.node_id, agent_address=agent_address(armed_cluster))
    images = await guest_images(armed_cluster)
    agent = pool.client(node)
    assert agent.armed is not None and not agent.armed.armed
    await run_to_line(agent, images)
    await until(lambda: armed_now(agent), "a RunVm call armed after the first")
    await run_to_line(pool.client(node), images)
    assert agent.armed.taken == 1


async def test_armed_call_without_a_create_ends_with_no_reply(armed_cluster: Cluster) -> None:
    async with grpc.aio.insecure_channel(agent_address(armed_cluster)) as channel:
        call = agent_pb2_grpc.AgentServiceStub(channel).RunVm()
        await asyncio.sleep(0.2)  # the agent holds it open, waiting (not a synchronisation: checked next)
        assert not call.done()
        await call.done_writing()
        replies = [reply async for reply in call]
        assert replies == [] and await call.code() == grpc.StatusCode.OK


async def test_agent_stop_ends_armed_calls_then_run_vm_uses_a_new_call(
        armed_cluster: Cluster, pool: AgentPool) -> None:
    node = Node(id=armed_cluster.node_id, agent_address=agent_address(armed_cluster))
    images = await guest_images(armed_cluster)
    agent = pool.client(node)
    await run_to_line(agent, images)
    await until(lambda: armed_now(agent), "a RunVm call armed")
    assert agent.armed is not None
    taken = agent.armed.taken
    started = time.monotonic()
    await asyncio.to_thread(armed_cluster.agent.stop)
    stopped_in = time.monotonic() - started
    assert stopped_in < 1.5, f"the agent took {stopped_in:.2f} s to stop: an armed call held its grace period"
    armed_cluster.agent.start()
    await asyncio.to_thread(armed_cluster.wait_agent_ready, 30)
    await run_to_line(pool.client(node), images)
    assert agent.armed.taken == taken, "the call the stopped agent ended was taken"
