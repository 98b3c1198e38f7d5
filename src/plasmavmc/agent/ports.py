"""The node's NIC ports: what the control plane told this agent to plumb, through its NetworkProvider.

A port is plumbed before the hypervisor opens its tap (create, attach) and removed after the VM or NIC
is gone. Without a provider (`[network] provider = "none"`) every call is a no-op and NICs stay bare
taps. At agent start `restore()` re-plumbs every recorded port, adding only what went missing, so a
restart never disturbs a running VM's network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from plasmavmc.network.base import NetworkProvider
from plasmavmc.types.network import NetworkPeers, PortRequest, SecurityGroup, port_id_for

log = logging.getLogger(__name__)


class NodePorts:
    def __init__(self, provider: NetworkProvider | None) -> None:
        self.provider = provider

    async def plumb(self, ports: Sequence[PortRequest]) -> None:
        if self.provider is None:
            return
        for port in ports:
            await self.provider.create_port(port)

    async def unplumb_nic(self, vm_id: str, nic_id: str) -> None:
        if self.provider is not None:
            await self.provider.delete_port(port_id_for(vm_id, nic_id))

    async def unplumb_vm(self, vm_id: str) -> None:
        if self.provider is None:
            return
        for port in await self.provider.vm_ports(vm_id):
            await self.provider.delete_port(port.id)

    async def update_security(self, port_id: str, groups: Sequence[SecurityGroup]) -> None:
        if self.provider is not None:
            await self.provider.update_security_groups(port_id, groups)

    async def update_overlay(self, view: NetworkPeers) -> None:
        if self.provider is not None:
            await self.provider.update_overlay(view)

    async def restore(self) -> None:
        if self.provider is not None:
            await self.provider.restore()
            log.info("network: %d port(s) re-plumbed", len(await self.provider.ports()))
