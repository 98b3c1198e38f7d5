"""`BridgeProvider`: the embedded default `NetworkProvider` (one node, zero services).

What it owns on this node, all named from its settings so two providers (two "nodes" in tests, or a
test beside a real agent) never touch each other's:
* a bridge per tenant network (`<prefix><VNI as 6 hex digits>`, the same name on every node) holding the
  network's gateway address;
* a persistent tap per port (the name the control plane chose; the hypervisor opens it by name);
* one nftables table pair (`rules.py`), re-rendered whole from the port records on each change;
* a dnsmasq per network with DHCP on (`dhcp.py`);
* its records: `<state_dir>/ports/<port id>.json` (the `PortRequest` as told) and `<state_dir>/net-<id>/`.

Between nodes (`vxlan_local` set): a VXLAN device per network (`<prefix>v<VNI hex>`, segment = the
network's VNI) on its bridge; broadcast and unknown unicast go to every peer node of the network
(head-end replication) and each port on another node has a static FDB entry pointing at its node — both
as the control plane last told them (`update_overlay`, recorded in `overlay.py`, so a restart re-applies
them); other unicast MACs are learned. Anti-spoofing and security groups apply
at each port's own node.

Records are the truth after an agent restart: `create_port` of a recorded port re-plumbs what is missing
without touching what exists, so running VMs keep their taps. The last port of a network takes the
network's bridge and dnsmasq with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from plasmavmc import validation_reports
from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge import dhcp, links, nft, overlay, rules
from plasmavmc.network.checks import IFNAME, check_groups, check_ip, check_request
from plasmavmc.network.records import PortRecords, port_of
from plasmavmc.types.network import Network, NetworkPeers, Port, PortRequest, SecurityGroup

_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")


@dataclass(frozen=True)
class BridgeSettings:
    state_dir: Path
    table: str = "plasmavmc"  # the nftables table name (bridge and inet families)
    prefix: str = "pvm"  # link-name prefix of bridges (at most 5 characters)
    vxlan_local: str = ""  # this node's underlay IPv4; "" = no VXLAN (networks stay on this node)
    vxlan_port: int = 4789

    @classmethod
    def from_bridge_name(cls, state_dir: Path, bridge_name: str, vxlan_local: str = "") -> BridgeSettings:
        """`[network] bridge_name` is the stem of every name: the nftables table (non-identifier
        characters as `_`) and, by its first 5 characters, each network's bridge."""
        table = re.sub(r"[^A-Za-z0-9_]", "_", bridge_name)
        return cls(state_dir, table if table[:1].isalpha() else f"t{table}", bridge_name[:5], vxlan_local)


class BridgeProvider(NetworkProvider):
    name = "bridge"

    def __init__(self, settings: BridgeSettings) -> None:
        if not _TABLE.fullmatch(settings.table):
            raise InvalidArgument("network.table", f"{settings.table!r} is not an nftables table name")
        if not IFNAME.fullmatch(settings.prefix) or len(settings.prefix) > 5:
            raise InvalidArgument("network.prefix", "at most 5 characters of [A-Za-z0-9_.-]")
        self.settings = settings
        self._store = PortRecords(settings.state_dir)
        self._lock = asyncio.Lock()

    def bridge_name(self, network: Network) -> str:
        if network.vni:
            return f"{self.settings.prefix}{network.vni:06x}"
        return f"{self.settings.prefix}h{hashlib.sha256(network.id.encode()).hexdigest()[:9]}"

    def vxlan_name(self, network: Network) -> str:
        return f"{self.settings.prefix}v{network.vni:06x}"

    def _vxlan(self, network: Network) -> bool:
        return bool(self.settings.vxlan_local and network.vni)

    def _net_dir(self, network_id: str) -> Path:
        return self.settings.state_dir / f"net-{network_id}"

    def _records(self) -> list[PortRequest]:
        return self._store.all()

    def _record(self, port_id: str) -> PortRequest:
        return self._store.get(port_id)

    def _save(self, req: PortRequest) -> None:
        self._store.save(req)

    async def _apply_rules(self, records: Sequence[PortRequest]) -> None:
        nets = {r.network.id: r.network for r in records}
        plumbing = [rules.NetworkPlumbing(n, self.bridge_name(n)) for n in nets.values()]
        if any(n.egress_nat for n in nets.values()):
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        tunnels = [self.vxlan_name(n) for n in nets.values() if self._vxlan(n)]
        await nft.apply(rules.ruleset(self.settings.table, plumbing, records, tunnels))

    async def _plumb_network(self, req: PortRequest, records: Sequence[PortRequest]) -> None:
        bridge = self.bridge_name(req.network)
        self._net_dir(req.network.id).mkdir(parents=True, exist_ok=True)
        await links.ensure_bridge(bridge, req.network.gateway_ip, req.network.subnet.prefixlen)
        if self._vxlan(req.network):
            vxlan = self.vxlan_name(req.network)
            await links.ensure_vxlan(vxlan, req.network.vni, self.settings.vxlan_local, self.settings.vxlan_port,
                                     bridge)
            await overlay.apply(vxlan, self._net_dir(req.network.id))
        if req.network.dhcp:
            same = [r for r in records if r.network.id == req.network.id]
            await dhcp.ensure(req.network, bridge, self._net_dir(req.network.id), same)

    async def create_port(self, req: PortRequest) -> Port:
        check_request(req)
        async with self._lock:
            self._save(req)
            records = self._records()
            await self._plumb_network(req, records)
            await links.ensure_tap(req.tap_device, self.bridge_name(req.network))
            await self._apply_rules(records)
        return port_of(req)

    async def delete_port(self, port_id: str) -> None:
        async with self._lock:
            try:
                req = self._record(port_id)
            except NotFound:
                return
            await links.delete(req.tap_device)
            self._store.remove(port_id)
            records = self._records()
            same = [r for r in records if r.network.id == req.network.id]
            net_dir = self._net_dir(req.network.id)
            if same:
                if req.network.dhcp:
                    await dhcp.ensure(req.network, self.bridge_name(req.network), net_dir, same)
            else:
                await dhcp.stop(net_dir)
                if self._vxlan(req.network):
                    await links.delete(self.vxlan_name(req.network))
                await links.delete(self.bridge_name(req.network))
                shutil.rmtree(net_dir, ignore_errors=True)
            await self._apply_rules(records)

    async def get_port(self, port_id: str) -> Port:
        return port_of(self._record(port_id))

    async def update_security_groups(self, port_id: str, groups: Sequence[SecurityGroup]) -> None:
        check_groups(groups)
        async with self._lock:
            req = replace(self._record(port_id), security_groups=tuple(groups))
            self._save(req)
            await self._apply_rules(self._records())

    async def update_peers(self, network: Network, peers: Sequence[str]) -> None:
        for peer in peers:
            check_ip(peer, "peers")
        async with self._lock:
            net_dir = self._net_dir(network.id)
            if net_dir.exists():
                had = overlay.load(net_dir)
                await self._overlay(network, replace(had, peers=frozenset(peers)))

    async def update_overlay(self, view: NetworkPeers) -> None:
        validation_reports.network_peers(view)
        async with self._lock:
            fdb = frozenset((e.mac_address, e.remote) for e in view.fdb)
            await self._overlay(view.network, overlay.Overlay(frozenset(view.peers), fdb, view.revision))

    async def _overlay(self, network: Network, view: overlay.Overlay) -> None:
        """Record `view` (never this node itself) and apply it; no port of the network here: nothing to do."""
        net_dir = self._net_dir(network.id)
        if not net_dir.exists():
            return
        mine = self.settings.vxlan_local
        view = replace(view, peers=view.peers - {mine}, fdb=frozenset(e for e in view.fdb if e[1] != mine))
        if overlay.save(net_dir, view) and self._vxlan(network):
            await overlay.apply(self.vxlan_name(network), net_dir)

    async def ports(self) -> list[Port]:
        return [port_of(r) for r in self._records()]

    async def vm_ports(self, vm_id: str) -> list[Port]:
        return [port_of(r) for r in self._records() if r.vm_id == vm_id]

    async def restore(self) -> None:
        for req in self._records():
            await self.create_port(req)

    async def teardown(self) -> None:
        """Remove everything this provider plumbed (tests, node decommissioning)."""
        for req in self._records():
            await self.delete_port(req.port_id)
        with contextlib.suppress(nft.NftFailed):
            await nft.apply(rules.teardown(self.settings.table))

    async def close(self) -> None:
        return None

