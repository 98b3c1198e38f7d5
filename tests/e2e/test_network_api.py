"""Tenant networks through the real server and agent, for each provider (bridge, OVN), the whole cluster
in a netns.

The outer test (`test_api_cluster_in_its_own_namespace[provider]`) makes a network namespace, brings its
loopback up and runs this same file's inner tests there with pytest (`ip netns exec`, argv list): server,
agent, QEMU guests, bridges, nftables and dnsmasq (bridge) or the OVN databases, northd, ovs-vswitchd and
ovn-controller (ovn, `tests/ovn.py`) then all live in that namespace, and the gRPC client too (its I/O
threads could not be moved into a namespace after the fact). The inner tests skip unless
`PLASMAVMC_NETNS_INNER` is set (to the provider's name).

Inner: two VMs created with a NIC on `default` (made on first use) show their MAC and IPv4 in GetVm,
get exactly that address from DHCP, ping each other; a rule added to n2's security group through the
API opens a TCP port on the node at once and removing it closes it; deleting the VMs removes taps, the
bridge, the dnsmasq process (bridge) or every NB row and OVS port (ovn), and their addresses are handed
out again.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.network.bridge import links
from plasmavmc.types.network import Direction, Protocol, SecurityRule
from plasmavmc.types.vm import NetworkSpec, VirtualMachine
from tests import binaries, ovn
from tests.conftest import Cluster, needs_qemu, start_cluster
from tests.contract.backends import run
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec
from tests.e2e.test_qemu_api import WsStream
from tests.netns import outside, run_file_in_netns

INNER = "PLASMAVMC_NETNS_INNER"
# n2's group: outbound anywhere, ping from the members of `default` (n1), nothing else inbound
WEB_BASE = (SecurityRule(Direction.EGRESS),
            SecurityRule(Direction.INGRESS, Protocol.ICMP, remote_group="default"))
OPEN_5555 = SecurityRule(Direction.INGRESS, Protocol.TCP, 5555, 5555, "0.0.0.0/0")
PROVIDER = os.environ.get(INNER, "bridge")
OUTSIDE_NEAR, OUTSIDE_SERVER, MARKER = "198.51.100.1", "198.51.100.2", "outside-says-hello"  # TEST-NET-2
NEEDS = {"bridge": ("nft", "dnsmasq", "ip"), "ovn": ("ip", *ovn.CENTRAL_BINARIES, *ovn.NODE_BINARIES)}
pytestmark = [needs_qemu, pytest.mark.timeout(900)]
inner_only = pytest.mark.skipif(INNER not in os.environ, reason="runs inside its own netns (see the outer test)")


@pytest.mark.skipif(INNER in os.environ, reason="this is the inner run")
@pytest.mark.parametrize("provider", [pytest.param(p, marks=binaries.require(*NEEDS[p])) for p in sorted(NEEDS)])
def test_api_cluster_in_its_own_namespace(provider: str) -> None:
    run_file_in_netns("api", __file__, INNER, passed=7, timeout=880, marker_value=provider)


@pytest.fixture(scope="module")
def ovn_world() -> Iterator[tuple[ovn.OvnCentral, ovn.OvnNode] | None]:
    """The OVN central and this node's OVS + ovn-controller (ovn runs only), in the test's namespace."""
    if PROVIDER != "ovn":
        yield None
        return
    central = ovn.OvnCentral.start()
    try:
        node = ovn.OvnNode.start(central, "pvapi-node")
        try:
            yield central, node
        finally:
            node.stop()
    finally:
        central.stop()


@pytest.fixture(scope="module")
def uplink(ovn_world: tuple[ovn.OvnCentral, ovn.OvnNode] | None) -> Iterator[str]:
    """The "internet": a namespace behind a veth with a server on OUTSIDE_SERVER:8000. Bridge: the veth's
    near end holds an address and the host routes (and masquerades) to it; OVN: it is the uplink on br-ex,
    and OUTSIDE_SERVER is the routers' next hop."""
    with outside("uplink0", None if ovn_world else OUTSIDE_NEAR, OUTSIDE_SERVER, MARKER) as name:
        if ovn_world is not None:
            ovn_world[1].uplink("uplink0")
        yield name


@pytest.fixture(scope="module")
def net_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path,
                ovn_world: tuple[ovn.OvnCentral, ovn.OvnNode] | None, uplink: str) -> Iterator[Cluster]:
    extra = ""
    if ovn_world is not None:
        central, node = ovn_world
        extra = (f'overlay_endpoint = "{central.nb_tcp}"\novs_endpoint = "{node.ovs_db}"\n'
                 f'external_cidr = "{OUTSIDE_SERVER.rsplit(".", 1)[0]}.0/24"\nexternal_gateway = "{OUTSIDE_SERVER}"\n')
    c = start_cluster(tmp_path_factory.mktemp("netapi"), guest_dir, network_provider=PROVIDER, network_extra=extra,
                      server_extra="[scheduler]\ncpu_overcommit_ratio = 4\n")  # a third 1-vCPU guest on 2 cores
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def api(net_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(net_cluster.api) as c:
        yield c


@pytest.fixture(scope="module")
async def vms(api: PlasmaClient) -> AsyncIterator[list[VirtualMachine]]:
    made: list[VirtualMachine] = []
    await api.create_security_group(ORG, PROJECT, "web", WEB_BASE)
    for name, groups in (("n1", ()), ("n2", ("web",))):
        nic = NetworkSpec(id="nic0", network_id="default", security_groups=groups)
        spec = dataclasses.replace(tiny_spec(), network=(nic,))
        vm = await api.create_vm(name, ORG, PROJECT, spec)
        made.append(vm)
        await api.start_vm(ORG, PROJECT, vm.id)
    for vm in made:
        await console_until(api, vm.id, f"PLASMAVMC-READY name={vm.name} ", timeout=180)
    yield made
    for vm in made:
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)


@inner_only
async def test_inner_nics_show_mac_and_address(api: PlasmaClient, vms: list[VirtualMachine]) -> None:
    got = [await api.get_vm(ORG, PROJECT, vm.id) for vm in vms]
    nics = [vm.spec.network[0] for vm in got]
    assert all(n.mac_address and n.ip_address for n in nics)
    assert len({n.ip_address for n in nics}) == 2 and nics[0].network_id == nics[1].network_id


@inner_only
async def test_inner_dhcp_and_ping(net_cluster: Cluster, api: PlasmaClient, vms: list[VirtualMachine]) -> None:
    ips = []
    for vm in vms:
        nic = (await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0]
        shell = WsStream(await open_console(net_cluster.console, ORG, PROJECT, vm.id))
        try:
            out = await run(shell, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1", 90)
            assert f"lease of {nic.ip_address} obtained" in out, out
            await run(shell, f"ip addr add {nic.ip_address}/24 dev eth0")
        finally:
            await shell.close()
        ips.append(nic.ip_address)
    shell = WsStream(await open_console(net_cluster.console, ORG, PROJECT, vms[0].id))
    try:
        out = await run(shell, f"ping -c 3 -W 3 {ips[1]}", 90)
        assert re.search(r"[123] packets received", out), out
    finally:
        await shell.close()


@inner_only
async def test_inner_security_group_change_reaches_the_node(net_cluster: Cluster, api: PlasmaClient,
                                                            vms: list[VirtualMachine]) -> None:
    n2_ip = (await api.get_vm(ORG, PROJECT, vms[1].id)).spec.network[0].ip_address
    server = WsStream(await open_console(net_cluster.console, ORG, PROJECT, vms[1].id))
    client = WsStream(await open_console(net_cluster.console, ORG, PROJECT, vms[0].id))
    connect = f"nc -w 3 {n2_ip} 5555 </dev/null 2>&1"
    try:
        await run(server, "nc -ll -p 5555 -e echo port-opened </dev/null >/dev/null 2>&1 & true")
        assert "port-opened" not in await run(client, connect, 60)
        await api.set_security_group_rules(ORG, PROJECT, "web", [*WEB_BASE, OPEN_5555])
        assert "port-opened" in await run(client, connect, 60)
        await api.set_security_group_rules(ORG, PROJECT, "web", WEB_BASE)
        assert "port-opened" not in await run(client, connect, 60)
    finally:
        await server.close()
        await client.close()


@inner_only
async def test_inner_plumbing_exists(net_cluster: Cluster, vms: list[VirtualMachine],
                                     ovn_world: tuple[ovn.OvnCentral, ovn.OvnNode] | None) -> None:
    if ovn_world is not None:  # one logical switch with both ports (+ the router's), both taps on br-int
        central, node = ovn_world
        switches = central.nbctl("--bare", "--columns=name", "find", "Logical_Switch",
                                 "external_ids:plasmavmc-owner=pvapi").split()
        assert len(switches) == 1, switches
        assert len(central.nbctl("lsp-list", switches[0]).splitlines()) == 3
        assert len(node.vsctl("list-ports", "br-int").split()) == 2
        return
    names = await links.names("pvapi")
    assert len(names) == 1, names  # one bridge: both NICs are on the default network
    hosts = list((net_cluster.root / "net").glob("net-*/hosts"))
    assert len(hosts) == 1 and len(hosts[0].read_text().splitlines()) == 2


async def _shell_ip(net_cluster: Cluster, api: PlasmaClient, vm: VirtualMachine, command: str) -> str:
    shell = WsStream(await open_console(net_cluster.console, ORG, PROJECT, vm.id))
    try:
        return await run(shell, command, 90)
    finally:
        await shell.close()


def _received(out: str) -> int:
    found = re.search(r"(\d+) packets received", out)
    return int(found.group(1)) if found else 0


@inner_only
async def test_inner_spoofed_source_is_dropped(net_cluster: Cluster, api: PlasmaClient,
                                               vms: list[VirtualMachine]) -> None:
    n1, n2 = [(await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0].ip_address for vm in vms]
    ping = f"ping -c 2 -W 2 {n2}"
    # an address of the subnet that is neither VM's (the allocator may hand out any; pinging its own
    # spoofed address would answer from inside the guest)
    spoofed = next(a for a in (f"10.0.0.{h}" for h in range(222, 254)) if a not in (n1, n2))
    await _shell_ip(net_cluster, api, vms[0], f"ip addr del {n1}/24 dev eth0; ip addr add {spoofed}/24 dev eth0")
    assert _received(await _shell_ip(net_cluster, api, vms[0], ping)) == 0
    await _shell_ip(net_cluster, api, vms[0], f"ip addr del {spoofed}/24 dev eth0; ip addr add {n1}/24 dev eth0")
    assert _received(await _shell_ip(net_cluster, api, vms[0], f"ping -c 3 -W 3 {n2}")) >= 1  # its own: allowed


@inner_only
async def test_inner_other_network_is_unreachable_and_nat(net_cluster: Cluster, api: PlasmaClient,
                                                          vms: list[VirtualMachine]) -> None:
    """n3 on a second network (egress NAT on) and n1 (default network, NAT off) cannot reach each other;
    the outside server answers n3 only."""
    await api.create_network(ORG, PROJECT, "other", "10.77.0.0/24", egress_nat=True)
    nic = NetworkSpec(id="nic0", network_id="other")
    vm = await api.create_vm("n3", ORG, PROJECT, dataclasses.replace(tiny_spec(), network=(nic,)))
    try:
        await api.start_vm(ORG, PROJECT, vm.id)
        await console_until(api, vm.id, f"PLASMAVMC-READY name={vm.name} ", timeout=180)
        n3 = (await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0].ip_address
        dhcp = "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1"
        out = await _shell_ip(net_cluster, api, vm, dhcp)
        assert f"lease of {n3} obtained" in out, out
        await _shell_ip(net_cluster, api, vm, f"ip addr add {n3}/24 dev eth0; ip route add default via 10.77.0.1")
        n1 = (await api.get_vm(ORG, PROJECT, vms[0].id)).spec.network[0].ip_address
        assert _received(await _shell_ip(net_cluster, api, vm, f"ping -c 2 -W 2 {n1}")) == 0
        assert _received(await _shell_ip(net_cluster, api, vms[0], f"ping -c 2 -W 2 {n3}")) == 0
        fetch = f"nc -w 5 {OUTSIDE_SERVER} 8000 </dev/null 2>&1"
        assert MARKER in await _shell_ip(net_cluster, api, vm, fetch)
        assert MARKER not in await _shell_ip(net_cluster, api, vms[0], f"ip route add default via 10.0.0.1; {fetch}")
    finally:
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)
        await api.delete_network(ORG, PROJECT, "other")


@inner_only
async def test_inner_delete_leaves_nothing(net_cluster: Cluster, api: PlasmaClient, vms: list[VirtualMachine],
                                           ovn_world: tuple[ovn.OvnCentral, ovn.OvnNode] | None) -> None:
    before = [(await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0].ip_address for vm in vms]
    for vm in vms:
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)
    assert await links.names("pv") == []  # no tap, no bridge
    assert not list((net_cluster.root / "net").glob("net-*"))  # dnsmasq stopped, its state removed
    if ovn_world is not None:
        central, node = ovn_world
        assert central.owned("pvapi") == [] and node.vsctl("list-ports", "br-int").split() == []
    again = await api.create_vm("n3", ORG, PROJECT, dataclasses.replace(
        tiny_spec(), network=(NetworkSpec(id="nic0", network_id="default", ip_address=before[0]),)))
    assert again.spec.network[0].ip_address == before[0]  # released: the same address can be had again
    await api.delete_vm(ORG, PROJECT, again.id, force=True)
    vms.clear()
