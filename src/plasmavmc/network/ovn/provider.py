"""`OvnProvider`: the cluster `NetworkProvider` (`[network] provider = "ovn"`).

The northbound database (`[network] overlay_endpoint`, e.g. tcp:127.0.0.1:6641) holds the logical
network, shared by every node (`nb.py`); this node adds each VM's tap to its integration bridge with the
logical port's id (`vswitch.py`), and `ovn-controller` binds it, tunnelling to other chassis over
Geneve. The tap itself is made by the netlink code the bridge provider uses (`bridge/links.py`).

Records (`records.py`) are the truth after an agent restart: `create_port` of a recorded port re-creates
whatever is missing — the tap, the OVS port, the NB rows — and leaves what exists alone, so running VMs
keep their taps. The last port of a network (cluster-wide, as the NB sees it) takes the network's rows.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge import links
from plasmavmc.network.checks import IFNAME, check_groups, check_ip, check_request
from plasmavmc.network.ovn import egress
from plasmavmc.network.ovn.nb import Northbound
from plasmavmc.network.ovn.vswitch import LocalSwitch
from plasmavmc.network.records import PortRecords, port_of
from plasmavmc.types.network import Network, Port, PortRequest, SecurityGroup
from plasmavmc.validation import OVSDB_ENDPOINT_RE

log = logging.getLogger(__name__)
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")


@dataclass(frozen=True)
class OvnSettings:
    state_dir: Path
    nb_endpoint: str  # the northbound DB (tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH)
    ovs_endpoint: str = "unix:/var/run/openvswitch/db.sock"  # this node's Open_vSwitch DB
    integration_bridge: str = "br-int"
    prefix: str = "pvm"  # names and owner mark of every row (identifier, at most 16 characters)
    external_cidr: str = ""  # egress NAT: the uplink's subnet (routers' SNAT addresses); "" = no way out
    external_gateway: str = ""  # egress NAT: the next hop on the uplink

    @classmethod
    def from_bridge_name(cls, state_dir: Path, nb_endpoint: str, ovs_endpoint: str, integration_bridge: str,
                         bridge_name: str, external_cidr: str = "", external_gateway: str = "") -> OvnSettings:
        """`[network] bridge_name` is the stem of the prefix (non-identifier characters as `_`)."""
        prefix = re.sub(r"[^A-Za-z0-9_]", "_", bridge_name)[:16]
        return cls(state_dir, nb_endpoint, ovs_endpoint, integration_bridge,
                   prefix if prefix[:1].isalpha() else f"p{prefix[:15]}", external_cidr, external_gateway)


def check_settings(settings: OvnSettings) -> None:
    if not OVSDB_ENDPOINT_RE.fullmatch(settings.nb_endpoint):
        raise InvalidArgument("network.overlay_endpoint", f"{settings.nb_endpoint[:80]!r} is not an OVSDB "
                              "endpoint (tcp:HOST:PORT, ssl:HOST:PORT, unix:PATH)")
    if not OVSDB_ENDPOINT_RE.fullmatch(settings.ovs_endpoint):
        raise InvalidArgument("network.ovs_endpoint", f"{settings.ovs_endpoint[:80]!r} is not an OVSDB endpoint")
    if not IFNAME.fullmatch(settings.integration_bridge):
        raise InvalidArgument("network.integration_bridge", "not an interface name")
    if not _PREFIX.fullmatch(settings.prefix):
        raise InvalidArgument("network.prefix", "an identifier of at most 16 characters")
    if bool(settings.external_cidr) != bool(settings.external_gateway):
        raise InvalidArgument("network.external_gateway", "external_cidr and external_gateway go together")
    if settings.external_cidr:
        try:
            uplink = ipaddress.IPv4Network(settings.external_cidr)
        except ValueError as exc:
            raise InvalidArgument("network.external_cidr", f"{settings.external_cidr[:60]!r}: {exc}") from exc
        check_ip(settings.external_gateway, "network.external_gateway")
        if ipaddress.IPv4Address(settings.external_gateway) not in uplink:
            raise InvalidArgument("network.external_gateway", f"not in {uplink}")


class OvnProvider(NetworkProvider):
    name = "ovn"

    def __init__(self, settings: OvnSettings) -> None:
        check_settings(settings)
        self.settings = settings
        self.nb = Northbound(settings.nb_endpoint, settings.prefix)
        self.ovs = LocalSwitch(settings.ovs_endpoint, settings.integration_bridge, settings.prefix)
        self._store = PortRecords(settings.state_dir)
        self._lock = asyncio.Lock()

    async def _plumb(self, req: PortRequest) -> None:
        dhcp = await asyncio.to_thread(self.nb.ensure_network, req.network)
        if req.network.egress_nat:
            await asyncio.to_thread(self._egress, req.network)
        await asyncio.to_thread(self.nb.ensure_port, req, dhcp)
        await asyncio.to_thread(self.nb.set_groups, req, req.security_groups)
        await links.ensure_tap(req.tap_device, None)
        await asyncio.to_thread(self.ovs.ensure_port, req.tap_device, req.port_id, req.mac_address)

    async def create_port(self, req: PortRequest) -> Port:
        check_request(req)
        async with self._lock:
            self._store.save(req)
            await self._plumb(req)
        return port_of(req)

    async def delete_port(self, port_id: str) -> None:
        async with self._lock:
            try:
                req = self._store.get(port_id)
            except NotFound:
                return
            await asyncio.to_thread(self.ovs.delete_port, req.tap_device)
            await links.delete(req.tap_device)
            await asyncio.to_thread(self.nb.delete_port, port_id)
            self._store.remove(port_id)
            await asyncio.to_thread(self._forget_network, req.network)

    def _egress(self, network: Network) -> None:
        settings = self.settings
        if not settings.external_cidr:
            log.warning("network %s asks for egress NAT; this node has no [network] external_cidr", network.id)
            return
        egress.ensure(self.nb, network, settings.external_cidr, settings.external_gateway, self.ovs.chassis())

    def _forget_network(self, network: Network) -> None:
        if not self.nb.network_ports(network):
            self.nb.delete_network(network)
            egress.forget(self.nb, network)
        self.nb.collect_groups()

    async def get_port(self, port_id: str) -> Port:
        return port_of(self._store.get(port_id))

    async def update_security_groups(self, port_id: str, groups: Sequence[SecurityGroup]) -> None:
        check_groups(groups)
        async with self._lock:
            req = replace(self._store.get(port_id), security_groups=tuple(groups))
            self._store.save(req)
            await asyncio.to_thread(self.nb.set_groups, req, req.security_groups)
            if not await asyncio.to_thread(self.nb.wait_applied):
                log.warning("security groups of port %s written to the NB; not every chassis applied them "
                            "within 10 s", port_id)

    async def update_peers(self, network: Network, peers: Sequence[str]) -> None:
        for peer in peers:
            check_ip(peer, "peers")  # OVN's chassis tunnel to each other themselves (Geneve)

    async def ports(self) -> list[Port]:
        return [port_of(r) for r in self._store.all()]

    async def vm_ports(self, vm_id: str) -> list[Port]:
        return [port_of(r) for r in self._store.all() if r.vm_id == vm_id]

    async def restore(self) -> None:
        for req in self._store.all():
            await self.create_port(req)

    async def teardown(self) -> None:
        """Remove everything this provider plumbed (tests, node decommissioning)."""
        for req in self._store.all():
            await self.delete_port(req.port_id)

    async def close(self) -> None:
        await asyncio.to_thread(self.nb.close)
        await asyncio.to_thread(self.ovs.close)
