"""Two OVN chassis, one tenant network: Geneve between two network namespaces joined by a veth underlay.

Each "node" is a namespace of its own (the same underlay as the VXLAN test: a veth pair, 192.0.2.1 /
192.0.2.2) with its own Open_vSwitch DB, ovs-vswitchd (userspace datapath; the underlay address sits on
its `br-phy` so Geneve leaves through OVS) and ovn-controller, its own OVN provider and QEMU guest. The
central (NB, SB, northd) runs in the first node; the second node's ovn-controller reaches the SB over
the underlay. Each guest gets its address from OVN's native DHCP on its own chassis, then they ping
each other across the Geneve tunnel that `ovs-vsctl show` and the SB's encaps name; a node's lost OVS
port and logical port come back from its records while the guests run; deleting the ports leaves no NB
row, OVS port or tap.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from plasmavmc.hypervisor.base import HypervisorBackend
from plasmavmc.network.bridge import links
from plasmavmc.network.ovn.provider import OvnProvider, OvnSettings
from plasmavmc.types.network import Network
from tests import binaries, ovn
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, run
from tests.ns_guests import UNDERLAY, NsGuest, boot, entered, guest_port, stop, two_namespaces

pytestmark = pytest.mark.timeout(900)
NET = Network(id="gv-net", cidr="10.75.0.0/24", vni=0x75A1)


Node = NsGuest[OvnProvider]


@pytest.fixture(scope="module")
def node_names() -> Iterator[tuple[str, str]]:
    binaries.require_now("qemu-system-x86_64", "qemu-img", "ip")
    with two_namespaces("gv") as names:
        yield names


@pytest.fixture(scope="module")
def chassis(node_names: tuple[str, str]) -> Iterator[tuple[ovn.OvnCentral, list[ovn.OvnNode]]]:
    ovn.require()
    a, b = node_names
    central = ovn.OvnCentral.start(listen=UNDERLAY[0], netns=a)
    made: list[ovn.OvnNode] = []
    try:
        made.append(ovn.OvnNode.start(central, "gva", UNDERLAY[0], a, central.sb_unix, underlay="u0"))
        made.append(ovn.OvnNode.start(central, "gvb", UNDERLAY[1], b, central.sb_tcp, underlay="u0"))
        yield central, made
    finally:
        for node in made:
            node.stop()
        central.stop()


@pytest.fixture(scope="module")
async def nodes(node_names: tuple[str, str], chassis: tuple[ovn.OvnCentral, list[ovn.OvnNode]],
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Node]]:
    profile = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(profile, str), profile
    root = tmp_path_factory.mktemp("geneve")
    backend: HypervisorBackend = profile.make_backend(short_run_dir(root))
    central, daemons = chassis
    made: list[Node] = []
    for i, ns in enumerate(node_names):
        settings = OvnSettings(root / f"node{i}", central.nb_unix, daemons[i].ovs_db, prefix="pvg")
        req = guest_port(NET, f"gv-port-{i}", f"52:54:00:75:00:0{i + 1}", f"10.75.0.{i + 11}")
        made.append(Node(ns, OvnProvider(settings), req))

    async def close(node: NsGuest[Any]) -> None:
        await node.provider.close()

    try:
        await boot(made, profile, backend, "gv")
        yield made
    finally:
        await stop(made, backend, after=close)


async def test_geneve_tunnels_between_chassis(nodes: list[Node],
                                              chassis: tuple[ovn.OvnCentral, list[ovn.OvnNode]]) -> None:
    central, _ = chassis
    encaps = central.sbctl("--bare", "--columns=type,ip", "list", "Encap").split()
    assert sorted(encaps) == sorted(["geneve", UNDERLAY[0], "geneve", UNDERLAY[1]]), encaps
    for i, daemon in enumerate(chassis[1]):
        ovn.wait_for("the Geneve port", lambda d=daemon, i=i: f'remote_ip="{UNDERLAY[1 - i]}"' in d.vsctl("show"))
        shown = daemon.vsctl("show")
        assert "type: geneve" in shown, shown


async def test_dhcp_per_chassis_and_ping_across(nodes: list[Node]) -> None:
    for node in nodes:
        assert node.console is not None
        out = await run(node.console, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1", 90)
        assert f"lease of {node.req.ip_addresses[0]} obtained" in out, out
        await run(node.console, f"ip addr add {node.req.ip_addresses[0]}/24 dev eth0")
    a, b = nodes
    assert a.console is not None
    out = await run(a.console, f"ping -c 3 -W 3 {b.req.ip_addresses[0]}", 90)
    assert re.search(r"[123] packets received", out), out


async def test_agent_restart_heals_plumbing(nodes: list[Node],
                                            chassis: tuple[ovn.OvnCentral, list[ovn.OvnNode]]) -> None:
    """The OVS port and the logical port lost while the guests run come back from a fresh provider's
    records (what the agent does at start); the running guests reach each other again."""
    central, daemons = chassis
    a, b = nodes
    assert b.console is not None
    ping = f"ping -c 2 -W 2 {a.req.ip_addresses[0]}"
    daemons[0].vsctl("del-port", "br-int", a.req.tap_device)
    central.nbctl("lsp-del", a.req.port_id)
    assert not re.search(r"[12] packets received", await run(b.console, ping, 90))
    again = OvnProvider(a.provider.settings)
    try:
        with entered(a.ns):
            await again.restore()
    finally:
        await again.close()
    ovn.wait_for("the port bound again", lambda: central.nbctl(
        "get", "Logical_Switch_Port", a.req.port_id, "up").strip() == "true")
    out = await run(b.console, f"ping -c 3 -W 3 {a.req.ip_addresses[0]}", 90)
    assert re.search(r"[123] packets received", out), out


async def test_delete_leaves_nothing(nodes: list[Node], chassis: tuple[ovn.OvnCentral, list[ovn.OvnNode]]) -> None:
    central, daemons = chassis
    for node, daemon in zip(nodes, daemons, strict=True):
        with entered(node.ns):
            await node.provider.delete_port(node.req.port_id)
            assert not await links.exists(node.req.tap_device)
        ports = daemon.vsctl("list-ports", "br-int").split()
        assert [p for p in ports if not p.startswith("ovn-")] == [], ports  # ovn-<chassis>-N: the tunnel
    assert central.owned("pvg") == []
