"""`plasmavmc node delete`: a NOT_READY node without VMs goes; anything else needs `--force`, and a VM
left on a force-deleted node can still be deleted. Real server and agent (this module's own `cluster`);
the agent is stopped for good half-way, as an operator would before removing its machine."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from plasmavmc.cli.main import main
from plasmavmc.client import PlasmaClient
from plasmavmc.errors import InvalidArgument, InvalidState, NodeNotFound, VmNotFound
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2
from plasmavmc.wire.convert import to_proto
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, tiny_spec

pytestmark = needs_qemu  # a VM is created (its disk overlay by qemu-img)
GHOST = "node-ghost"


async def until_state(client: PlasmaClient, node_id: str, state: NodeState, timeout: float = 60) -> Node:
    deadline = time.monotonic() + timeout
    while (node := await client.get_node(node_id)).state != state:
        assert time.monotonic() < deadline, f"{node_id} still {node.state} after {timeout}s"
        await asyncio.sleep(0.2)  # polling the server's view with a deadline
    return node


async def test_only_a_not_ready_node_is_deleted_without_force(cluster: Cluster, client: PlasmaClient) -> None:
    ghost = Node(id=GHOST, capacity=NodeCapacity(), agent_address="127.0.0.1:1")  # capacity 0: no VM lands
    async with grpc.aio.insecure_channel(cluster.api) as channel:  # the no-TLS default takes it on trust
        await agent_pb2_grpc.AgentServiceStub(channel).Heartbeat(
            agent_pb2.HeartbeatRequest(node=to_proto(ghost, node_pb2.Node())), timeout=30)
    with pytest.raises(InvalidState, match="only a NOT_READY node"):
        await client.delete_node(GHOST)
    with pytest.raises(NodeNotFound):
        await client.delete_node("no-such-node")
    with pytest.raises(InvalidArgument) as bad:
        await client.delete_node("Bad/Id")
    assert bad.value.field == "node_id"
    await until_state(client, GHOST, NodeState.NOT_READY)
    assert await asyncio.to_thread(main, ["--addr", cluster.api, "node", "delete", GHOST]) == 0  # the CLI
    with pytest.raises(NodeNotFound):
        await client.get_node(GHOST)
    assert (await client.get_node(cluster.node_id)).state == NodeState.READY  # the real node is untouched


async def test_force_deletes_a_node_with_vms_which_can_then_be_deleted(cluster: Cluster, client: PlasmaClient) -> None:
    vm = await client.create_vm("left-1", ORG, PROJECT, tiny_spec())
    assert vm.node_id == cluster.node_id
    cluster.agent.stop()  # the machine is going away
    await until_state(client, cluster.node_id, NodeState.NOT_READY)
    with pytest.raises(InvalidState, match="still has 1 VMs"):
        await client.delete_node(cluster.node_id)
    assert await client.delete_node(cluster.node_id, force=True) == 1
    with pytest.raises(NodeNotFound):
        await client.get_node(cluster.node_id)
    flagged = await client.get_vm(ORG, PROJECT, vm.id)
    assert any(c.type == "NodeUnresponsive" and c.status for c in flagged.status.conditions)
    await client.delete_vm(ORG, PROJECT, vm.id)
    with pytest.raises(VmNotFound):
        await client.get_vm(ORG, PROJECT, vm.id)

