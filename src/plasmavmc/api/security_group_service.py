"""`plasmavmc.v1.SecurityGroupService`: security groups of a project (validate → core/networks → convert).
A rule change is pushed to the nodes of every port it affects before the call returns."""

from __future__ import annotations

from typing import Any

from plasmavmc.core.context import Core
from plasmavmc.core.networks import groups, networks, refresh
from plasmavmc.types.network import SecurityRule
from plasmavmc.v1 import network_pb2, network_pb2_grpc
from plasmavmc.wire.convert import from_proto, to_proto
from plasmavmc.wire.edge import ServicerContext, unary

Ctx = ServicerContext


def _rules(request: network_pb2.SecurityGroupRules) -> list[SecurityRule]:
    return [from_proto(SecurityRule, r) for r in request.rules]


class SecurityGroupServicer(network_pb2_grpc.SecurityGroupServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    @unary
    async def CreateSecurityGroup(self, request: network_pb2.SecurityGroupRules, context: Ctx) -> Any:
        made = await groups.create(self.core.store, request.org_id, request.project_id, request.name, _rules(request))
        return to_proto(made, network_pb2.SecurityGroup())

    @unary
    async def GetSecurityGroup(self, request: network_pb2.SecurityGroupRef, context: Ctx) -> Any:
        found = await groups.get(self.core.store, request.org_id, request.project_id, request.name)
        return to_proto(found, network_pb2.SecurityGroup())

    @unary
    async def ListSecurityGroups(self, request: network_pb2.ListSecurityGroupsRequest, context: Ctx) -> Any:
        reply = network_pb2.ListSecurityGroupsResponse()
        for group in await groups.list_groups(self.core.store, request.org_id, request.project_id):
            to_proto(group, reply.security_groups.add())
        return reply

    @unary
    async def SetSecurityGroupRules(self, request: network_pb2.SecurityGroupRules, context: Ctx) -> Any:
        done = await groups.set_rules(self.core.store, request.org_id, request.project_id, request.name,
                                      _rules(request))
        await refresh.security_group_changed(self.core, request.org_id, request.project_id, request.name)
        return to_proto(done, network_pb2.SecurityGroup())

    @unary
    async def DeleteSecurityGroup(self, request: network_pb2.SecurityGroupRef, context: Ctx) -> Any:
        found = await groups.get(self.core.store, request.org_id, request.project_id, request.name)
        nets = await networks.list_networks(self.core.store, request.org_id, request.project_id)
        await groups.delete(self.core.store, request.org_id, request.project_id, request.name, nets)
        return to_proto(found, network_pb2.SecurityGroup())
