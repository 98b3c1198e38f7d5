"""NodeService methods of `PlasmaClient`: the operator's view of the compute nodes."""

from __future__ import annotations

from plasmavmc.client.base import ClientBase
from plasmavmc.types.node import Node
from plasmavmc.v1 import node_pb2
from plasmavmc.wire.convert import from_proto


class NodeMixin(ClientBase):
    """`plasmavmc.v1.NodeService`."""

    async def list_nodes(self) -> list[Node]:
        """Every registered node, following the page tokens."""
        result: list[Node] = []
        token = ""
        while True:
            request = node_pb2.ListNodesRequest(page_token=token)
            response = await self._unary(self._node_stub.ListNodes, request)
            result.extend(from_proto(Node, m) for m in response.nodes)
            token = str(response.next_page_token)
            if not token:
                return result

    async def get_node(self, node_id: str) -> Node:
        """One node."""
        request = node_pb2.GetNodeRequest(node_id=node_id)
        return from_proto(Node, await self._unary(self._node_stub.GetNode, request))

    async def cordon_node(self, node_id: str) -> Node:
        """Stop scheduling new VMs onto the node; its VMs keep running."""
        request = node_pb2.CordonNodeRequest(node_id=node_id)
        return from_proto(Node, await self._unary(self._node_stub.CordonNode, request))

    async def uncordon_node(self, node_id: str) -> Node:
        """Make a cordoned node schedulable again."""
        request = node_pb2.UncordonNodeRequest(node_id=node_id)
        return from_proto(Node, await self._unary(self._node_stub.UncordonNode, request))

    async def drain_node(self, node_id: str, allow_disk_loss: bool = False) -> Node:
        """Cordon the node and cold-move its VMs elsewhere in the background (progress: the node's
        `Drain` condition). VM disks are recreated from their images on the new node, so only with
        `allow_disk_loss` are VMs with disks moved; otherwise they are reported as not movable."""
        request = node_pb2.DrainNodeRequest(node_id=node_id, allow_disk_loss=allow_disk_loss)
        return from_proto(Node, await self._unary(self._node_stub.DrainNode, request))

    async def delete_node(self, node_id: str, force: bool = False) -> int:
        """Remove a NOT_READY node without VMs (`force`: any node; its VMs are flagged and can be
        deleted). Returns how many VMs were still assigned to it."""
        request = node_pb2.DeleteNodeRequest(node_id=node_id, force=force)
        return int((await self._unary(self._node_stub.DeleteNode, request)).orphaned_vms)
