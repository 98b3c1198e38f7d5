"""Overlay forwarding from the store: which nodes carry each tenant network, and where each port's MAC lives.

A node carries a network when a VM placed on it has a port there. Each such node is told (agent RPC
`UpdateNetworkPeers`) the underlay addresses of the other nodes carrying the network (its VXLAN flood
list) and, for every port on those nodes, the MAC and its node's underlay address (static FDB entries).
A node without an underlay address, or whose record is gone (node deleted), is nobody's peer.

Every view carries the store revision read before the view was: an agent keeps the newest view it was
told, so pushes racing each other converge on the last change. A push goes out after each change of
placement — a VM created or deleted or moved, a NIC attached or detached, a node removed — and for every
network of a node whose agent (re)started (`push_node`: its underlay address may be new). Best effort
per node: a node that cannot be reached is logged; it is told again at its next change or agent start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from plasmavmc.core.context import Core
from plasmavmc.core.networks import ports
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.records import read
from plasmavmc.types import codec
from plasmavmc.types.network import FdbEntry, Network, NetworkPeers
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)


async def _placed(core: Core, network: Network) -> list[tuple[str, str]]:
    """(node id, MAC) of every port on `network` whose VM is placed on a node."""
    out = []
    for rec in await ports.list_ports(core.store, network.id):
        if not rec.vm_id:
            continue
        vm = await read(core.store, VirtualMachine, keys.vm(network.org_id, network.project_id, rec.vm_id))
        if vm is not None and vm.value.node_id:
            out.append((vm.value.node_id, rec.port.mac_address))
    return out


async def views(core: Core, network: Network) -> dict[str, NetworkPeers]:
    """What each node carrying `network` with an underlay address must have, by node id."""
    revision = await core.store.revision()
    underlay = {n.value.id: n.value.underlay_address for n in await core.nodes.list()}
    placed = await _placed(core, network)
    vtep = {node: underlay.get(node, "") for node, _ in placed}
    out = {}
    for node, mine in vtep.items():
        if not mine:
            continue  # a node without an underlay address keeps its networks to itself: nothing to tell
        others = {n: v for n, v in vtep.items() if n != node and v and v != mine}
        fdb = sorted({FdbEntry(mac, others[n]) for n, mac in placed if n in others},
                     key=lambda e: (e.mac_address, e.remote))
        out[node] = NetworkPeers(network, tuple(sorted(set(others.values()))), tuple(fdb), revision)
    return out


async def _tell(core: Core, node_id: str, view: NetworkPeers) -> bool:
    try:
        node = await core.nodes.get(node_id)
        await core.agents.client(node.value).update_network_peers(view)
        return True
    except PlasmaError as err:
        log.warning("network %s: overlay peers not pushed to node %s: %s", view.network.id, node_id, err)
        return False


async def push_network(core: Core, network: Network) -> int:
    """Tell every node carrying `network` its peers; returns how many nodes took it."""
    told = 0
    for node_id, view in (await views(core, network)).items():
        told += await _tell(core, node_id, view)
    return told


async def push_for_vms(core: Core, vms: Iterable[VirtualMachine]) -> None:
    """Every network a NIC of `vms` is on (their node was removed: its ports no longer count)."""
    for org_id, project_id, network_id in sorted({(vm.org_id, vm.project_id, nic.network_id)
                                                  for vm in vms for nic in vm.spec.network}):
        found = await read(core.store, Network, keys.network(org_id, project_id, network_id))
        if found is not None:
            await push_network(core, found.value)


async def push_node(core: Core, node_id: str) -> int:
    """A node's agent (re)started: every network it carries, to every node carrying it (its underlay
    address may have changed with its config); returns how many networks. Runs in the background: a
    failure is logged, not raised."""
    told = 0
    try:
        for kv in await core.store.list_all(keys.NETWORKS):
            network = codec.loads(Network, kv.value)
            found = await views(core, network)
            if node_id in found:
                told += 1
                for node, view in found.items():
                    await _tell(core, node, view)
    except PlasmaError as err:
        log.warning("node %s: overlay peers not pushed after its agent started: %s", node_id, err)
    return told
