"""`NetworkProvider` (spec §10.2): plumbs one NIC's port on this node from a `PortRequest`.

The control plane owns addresses (IPAM), MACs and security-group membership; a provider turns a request
into datapath state (bridge/tap/nftables/dnsmasq for the Linux-bridge provider; logical switch ports and
ACLs for OVN) and can describe it again (`get_port`). Every method is idempotent: `create_port` for a
port that exists re-plumbs whatever is missing (that is how an agent restart heals), `delete_port` of an
unknown port is a no-op. `delete_network` removes a network's node-wide plumbing once its last port is gone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from plasmavmc.types.network import Network, NetworkPeers, Port, PortRequest, SecurityGroup


class NetworkProvider(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    async def create_port(self, req: PortRequest) -> Port: ...

    @abc.abstractmethod
    async def delete_port(self, port_id: str) -> None: ...

    @abc.abstractmethod
    async def get_port(self, port_id: str) -> Port:
        """The port as plumbed, or `NotFound` (field port_id)."""

    @abc.abstractmethod
    async def update_security_groups(self, port_id: str, groups: Sequence[SecurityGroup]) -> None: ...

    @abc.abstractmethod
    async def update_peers(self, network: Network, peers: Sequence[str]) -> None:
        """The underlay addresses of the other nodes with ports on `network` (bridge: the VXLAN flood
        list; an engine with its own tunnel control, such as OVN, ignores it)."""

    async def update_overlay(self, view: NetworkPeers) -> None:
        """The control plane's view of `view.network` for this node: its peers and, per port on another
        node, the MAC and that node's underlay address. A provider with per-MAC forwarding (bridge: static
        VXLAN FDB entries) overrides this and keeps only the newest view (`view.revision`); by default only
        the peers are passed on."""
        await self.update_peers(view.network, view.peers)

    @abc.abstractmethod
    async def ports(self) -> list[Port]:
        """Every port this provider has plumbed on this node (for adoption and leak checks)."""

    @abc.abstractmethod
    async def vm_ports(self, vm_id: str) -> list[Port]:
        """The ports plumbed for one VM (what deleting the VM removes)."""

    @abc.abstractmethod
    async def restore(self) -> None:
        """Re-plumb every recorded port, adding only what is missing (agent start)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release client resources; plumbing stays (VMs keep running across agent restarts)."""
