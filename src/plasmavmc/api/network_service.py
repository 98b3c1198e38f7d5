"""`plasmavmc.v1.NetworkService`: tenant networks of a project (validate → core/networks → convert)."""

from __future__ import annotations

from typing import Any

from plasmavmc.core.context import Core
from plasmavmc.core.networks import networks
from plasmavmc.v1 import network_pb2, network_pb2_grpc
from plasmavmc.wire.convert import to_proto
from plasmavmc.wire.edge import ServicerContext, unary

Ctx = ServicerContext


class NetworkServicer(network_pb2_grpc.NetworkServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core

    @unary
    async def CreateNetwork(self, request: network_pb2.CreateNetworkRequest, context: Ctx) -> Any:
        req = networks.NetworkRequest(
            org_id=request.org_id, project_id=request.project_id, name=request.name, cidr=request.cidr,
            gateway=request.gateway, dhcp=request.dhcp if request.HasField("dhcp") else True,
            egress_nat=request.egress_nat,
        )
        return to_proto(await networks.create(self.core.store, req), network_pb2.Network())

    @unary
    async def GetNetwork(self, request: network_pb2.NetworkRef, context: Ctx) -> Any:
        found = await networks.get(self.core.store, request.org_id, request.project_id, request.network)
        return to_proto(found, network_pb2.Network())

    @unary
    async def ListNetworks(self, request: network_pb2.ListNetworksRequest, context: Ctx) -> Any:
        found = await networks.list_networks(self.core.store, request.org_id, request.project_id)
        reply = network_pb2.ListNetworksResponse()
        for net in found:
            to_proto(net, reply.networks.add())
        return reply

    @unary
    async def DeleteNetwork(self, request: network_pb2.NetworkRef, context: Ctx) -> Any:
        gone = await networks.delete(self.core.store, request.org_id, request.project_id, request.network)
        return to_proto(gone, network_pb2.Network())
