"""The one-machine default (no TLS anywhere) says it trusts its callers, and still refuses the abuse
that needs no certificate to spot: a heartbeat's `allocatable` is never taken as reported."""

from __future__ import annotations

import grpc

from plasmavmc.client import PlasmaClient
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, node_pb2
from plasmavmc.wire.convert import to_proto
from tests.conftest import Cluster


def test_logs_say_reports_and_agent_calls_are_unauthenticated(cluster: Cluster) -> None:
    server_log = cluster.server.log.read_text()
    assert "agent heartbeats and reports are NOT authenticated" in server_log
    assert "calls to agents are plain gRPC" in server_log
    assert "accepts any caller" in cluster.agent.log.read_text()


async def test_inflated_allocatable_is_ignored(cluster: Cluster, client: PlasmaClient) -> None:
    real = await client.get_node(cluster.node_id)
    forged = Node(id=real.id, name=real.name, capacity=real.capacity, hypervisors=real.hypervisors,
                  allocatable=NodeCapacity(60000, 10**9, 10**6), agent_address=real.agent_address)
    async with grpc.aio.insecure_channel(cluster.api) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        await stub.Heartbeat(agent_pb2.HeartbeatRequest(node=to_proto(forged, node_pb2.Node())), timeout=30)
    assert (await client.get_node(cluster.node_id)).allocatable == real.capacity
