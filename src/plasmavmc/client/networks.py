"""NetworkService methods of `PlasmaClient`: tenant networks of a project."""

from __future__ import annotations

from plasmavmc.client.base import ClientBase
from plasmavmc.types.network import Network
from plasmavmc.v1 import network_pb2
from plasmavmc.wire.convert import from_proto


class NetworkMixin(ClientBase):
    """`plasmavmc.v1.NetworkService`."""

    async def create_network(self, org_id: str, project_id: str, name: str, cidr: str, *, gateway: str = "",
                             dhcp: bool = True, egress_nat: bool = False) -> Network:
        request = network_pb2.CreateNetworkRequest(org_id=org_id, project_id=project_id, name=name, cidr=cidr,
                                                   gateway=gateway, dhcp=dhcp, egress_nat=egress_nat)
        return from_proto(Network, await self._unary(self._network_stub.CreateNetwork, request))

    async def get_network(self, org_id: str, project_id: str, network: str) -> Network:
        """A network by id or name."""
        request = network_pb2.NetworkRef(org_id=org_id, project_id=project_id, network=network)
        return from_proto(Network, await self._unary(self._network_stub.GetNetwork, request))

    async def list_networks(self, org_id: str, project_id: str) -> list[Network]:
        request = network_pb2.ListNetworksRequest(org_id=org_id, project_id=project_id)
        reply = await self._unary(self._network_stub.ListNetworks, request)
        return [from_proto(Network, n) for n in reply.networks]

    async def delete_network(self, org_id: str, project_id: str, network: str) -> Network:
        """Delete a network with no NIC on it (INVALID_STATE otherwise)."""
        request = network_pb2.NetworkRef(org_id=org_id, project_id=project_id, network=network)
        return from_proto(Network, await self._unary(self._network_stub.DeleteNetwork, request))
