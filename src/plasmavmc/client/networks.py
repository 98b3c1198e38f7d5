"""NetworkService and SecurityGroupService methods of `PlasmaClient`: a project's networks and groups."""

from __future__ import annotations

from collections.abc import Sequence

from plasmavmc.client.base import ClientBase
from plasmavmc.types.network import Network, SecurityGroup, SecurityRule
from plasmavmc.v1 import network_pb2
from plasmavmc.wire.convert import from_proto, to_proto


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


class SecurityGroupMixin(ClientBase):
    """`plasmavmc.v1.SecurityGroupService`."""

    async def create_security_group(self, org_id: str, project_id: str, name: str,
                                    rules: Sequence[SecurityRule] = ()) -> SecurityGroup:
        request = _rules_request(org_id, project_id, name, rules)
        return from_proto(SecurityGroup, await self._unary(self._sg_stub.CreateSecurityGroup, request))

    async def get_security_group(self, org_id: str, project_id: str, name: str) -> SecurityGroup:
        request = network_pb2.SecurityGroupRef(org_id=org_id, project_id=project_id, name=name)
        return from_proto(SecurityGroup, await self._unary(self._sg_stub.GetSecurityGroup, request))

    async def list_security_groups(self, org_id: str, project_id: str) -> list[SecurityGroup]:
        request = network_pb2.ListSecurityGroupsRequest(org_id=org_id, project_id=project_id)
        reply = await self._unary(self._sg_stub.ListSecurityGroups, request)
        return [from_proto(SecurityGroup, g) for g in reply.security_groups]

    async def set_security_group_rules(self, org_id: str, project_id: str, name: str,
                                       rules: Sequence[SecurityRule]) -> SecurityGroup:
        """Replace the group's rules; every port using it is updated on its node before this returns."""
        request = _rules_request(org_id, project_id, name, rules)
        return from_proto(SecurityGroup, await self._unary(self._sg_stub.SetSecurityGroupRules, request))

    async def delete_security_group(self, org_id: str, project_id: str, name: str) -> SecurityGroup:
        request = network_pb2.SecurityGroupRef(org_id=org_id, project_id=project_id, name=name)
        return from_proto(SecurityGroup, await self._unary(self._sg_stub.DeleteSecurityGroup, request))


def _rules_request(org_id: str, project_id: str, name: str,
                   rules: Sequence[SecurityRule]) -> network_pb2.SecurityGroupRules:
    request = network_pb2.SecurityGroupRules(org_id=org_id, project_id=project_id, name=name)
    for rule in rules:
        to_proto(rule, request.rules.add())
    return request
