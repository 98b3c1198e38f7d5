"""`plasmavmc.v1.NodeService`: nodes as agents registered them; cordon, uncordon, drain and delete."""

from __future__ import annotations

from typing import Any

from plasmavmc import validation
from plasmavmc.core.context import Core
from plasmavmc.core.nodes.drain import start_drain
from plasmavmc.core.nodes.removal import delete_node
from plasmavmc.types.node import Node, NodeState
from plasmavmc.v1 import node_pb2, node_pb2_grpc
from plasmavmc.wire.convert import to_proto
from plasmavmc.wire.edge import ServicerContext, unary

Ctx = ServicerContext


def node_msg(node: Node) -> node_pb2.Node:
    return to_proto(node, node_pb2.Node())


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    @unary
    async def ListNodes(self, request: node_pb2.ListNodesRequest, context: Ctx) -> Any:
        nodes = sorted((n.value for n in await self.core.nodes.list()), key=lambda n: n.id)
        return node_pb2.ListNodesResponse(nodes=[node_msg(n) for n in nodes])

    @unary
    async def GetNode(self, request: node_pb2.GetNodeRequest, context: Ctx) -> Any:
        validation.name(request.node_id, "node_id")
        return node_msg((await self.core.nodes.get(request.node_id)).value)

    async def _set(self, node_id: str, state: NodeState | None) -> Any:
        validation.name(node_id, "node_id")
        return node_msg(await self.core.nodes.set_admin_state(node_id, state))

    @unary
    async def CordonNode(self, request: node_pb2.CordonNodeRequest, context: Ctx) -> Any:
        return await self._set(request.node_id, NodeState.CORDONED)

    @unary
    async def UncordonNode(self, request: node_pb2.UncordonNodeRequest, context: Ctx) -> Any:
        return await self._set(request.node_id, None)

    @unary
    async def DrainNode(self, request: node_pb2.DrainNodeRequest, context: Ctx) -> Any:
        validation.name(request.node_id, "node_id")
        return node_msg(await start_drain(self.core, request.node_id, request.allow_disk_loss))

    @unary
    async def DeleteNode(self, request: node_pb2.DeleteNodeRequest, context: Ctx) -> Any:
        validation.name(request.node_id, "node_id")
        orphaned = await delete_node(self.core, request.node_id, request.force)
        return node_pb2.DeleteNodeResponse(orphaned_vms=orphaned)
