"""Two nodes, one tenant network: VXLAN between two network namespaces joined by a veth underlay.

Each "node" is a namespace of its own with its own bridge provider (own state, own nftables tables,
own dnsmasq) and its own QEMU guest, started while the test is inside that namespace. The underlay is
a veth pair (192.0.2.1 / 192.0.2.2, TEST-NET-1, never leaving these namespaces). Each guest gets its
address from its own node's dnsmasq (DHCP does not cross the tunnel), then they ping each other across
nodes; deleting the ports removes the VXLAN devices.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.hypervisor.base import HypervisorBackend
from plasmavmc.network.bridge import links
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.types.network import FdbEntry, Network, NetworkPeers
from tests import binaries
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, run
from tests.ns_guests import UNDERLAY, NsGuest, boot, entered, guest_port, stop, two_namespaces

pytestmark = pytest.mark.timeout(900)
NET = Network(id="vx-net", cidr="10.74.0.0/24", vni=0x74A1)


Node = NsGuest[BridgeProvider]


@pytest.fixture(scope="module")
def node_names() -> Iterator[tuple[str, str]]:
    binaries.require_now("qemu-system-x86_64", "qemu-img", "nft", "dnsmasq", "ip")
    with two_namespaces("vx") as names:
        yield names


@pytest.fixture(scope="module")
async def nodes(node_names: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Node]]:
    profile = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(profile, str), profile
    root = tmp_path_factory.mktemp("vxlan")
    backend: HypervisorBackend = profile.make_backend(short_run_dir(root))
    made: list[Node] = []
    for i, ns in enumerate(node_names):
        settings = BridgeSettings(root / f"node{i}", table="pvx", prefix="pvx", vxlan_local=UNDERLAY[i])
        req = guest_port(NET, f"vx-port-{i}", f"52:54:00:74:00:0{i + 1}", f"10.74.0.{i + 11}")
        made.append(Node(ns, BridgeProvider(settings), req))

    async def peers(node: NsGuest[Any]) -> None:
        await node.provider.update_peers(NET, list(UNDERLAY))

    try:
        await boot(made, profile, backend, "vx", plumb=peers)
        yield made
    finally:
        await stop(made, backend)


async def test_vxlan_plumbing(nodes: list[Node]) -> None:
    for i, node in enumerate(nodes):
        with entered(node.ns):
            vxlan = node.provider.vxlan_name(NET)
            assert await links.exists(vxlan)
            assert await links.flood_peers(vxlan) == {UNDERLAY[1 - i]}  # never itself


async def test_dhcp_per_node_and_ping_across(nodes: list[Node]) -> None:
    for node in nodes:
        assert node.console is not None
        out = await run(node.console, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1", 90)
        assert f"lease of {node.req.ip_addresses[0]} obtained" in out, out
        await run(node.console, f"ip addr add {node.req.ip_addresses[0]}/24 dev eth0")
    a, b = nodes
    assert a.console is not None and b.req is not None
    out = await run(a.console, f"ping -c 3 -W 3 {b.req.ip_addresses[0]}", 90)
    assert re.search(r"[123] packets received", out), out


async def test_overlay_view_sets_forwarding_entries(nodes: list[Node]) -> None:
    """What the control plane tells (`update_overlay`) becomes the device's flood list and static FDB; an
    older view than the recorded one changes nothing; after a restart the record brings them back."""
    node, other = nodes[0], nodes[1]
    remote, mac = UNDERLAY[1], other.req.mac_address
    with entered(node.ns):
        vxlan = node.provider.vxlan_name(NET)
        await node.provider.update_overlay(NetworkPeers(NET, (remote,), (FdbEntry(mac, remote),), revision=10))
        assert await links.static_fdb(vxlan) == {mac: remote}
        assert await links.flood_peers(vxlan) == {remote}
        await node.provider.update_overlay(NetworkPeers(NET, (), (), revision=9))  # a late, older push
        assert await links.static_fdb(vxlan) == {mac: remote}
        assert await links.flood_peers(vxlan) == {remote}
        await links.delete(vxlan)  # what an agent restart finds missing is re-plumbed from the records
        await node.provider.restore()
        assert await links.static_fdb(vxlan) == {mac: remote}
        assert await links.flood_peers(vxlan) == {remote}
        await node.provider.update_overlay(NetworkPeers(NET, (remote,), (), revision=11))
        assert await links.static_fdb(vxlan) == {}


async def test_new_underlay_address_remakes_the_device(nodes: list[Node]) -> None:
    """The node's underlay address changed (config) and its agent restarted: the VXLAN device is made again
    from the new address, with the recorded overlay; back to the old one the same way."""
    node = nodes[0]
    vxlan = node.provider.vxlan_name(NET)
    moved = BridgeProvider(dataclasses.replace(node.provider.settings, vxlan_local="192.0.2.11"))
    with entered(node.ns):
        assert await links.vxlan_local(vxlan) == UNDERLAY[0]
        before = await links.flood_peers(vxlan)
        await moved.restore()
        assert await links.vxlan_local(vxlan) == "192.0.2.11"
        assert await links.flood_peers(vxlan) == before
        await node.provider.restore()
        assert await links.vxlan_local(vxlan) == UNDERLAY[0]


async def test_delete_removes_vxlan(nodes: list[Node], tmp_path: Path) -> None:
    node = nodes[1]
    with entered(node.ns):
        await node.provider.delete_port(node.req.port_id)
        assert not await links.exists(node.provider.vxlan_name(NET))
        assert not await links.exists(node.provider.bridge_name(NET))
        await node.provider.create_port(node.req)  # back, for the fixture's orderly teardown
