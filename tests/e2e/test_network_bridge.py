"""Tenant networks on real QEMU guests through the Linux-bridge provider, inside a private netns.

The whole module runs in a network namespace of its own (`tests/netns.py`): the provider's bridges, taps,
nftables tables and dnsmasq processes, the QEMU processes, and an "outside" namespace joined by a veth
(a web server there stands for the internet). Addresses come from the control plane's IPAM
(`core/networks`, on a real SQLite store); guests ask dnsmasq for them with busybox `udhcpc`.

Three guests: `a1` and `a2` on network A (no NAT), `b1` on network B (egress NAT). Security groups:
`default` (egress anywhere, ICMP from members of `default` on the same network) on every port, `web`
(TCP 5555 from anywhere) added to and removed from `a2`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from plasmavmc.core.networks import networks, ports
from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, VmHandle
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.network.bridge import dhcp, links, nft, rules
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.network import Direction, Network, PortRequest, Protocol, SecurityGroup, SecurityRule
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import ConsoleType, NetworkSpec
from tests import binaries
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, BOOT_DEADLINE_S, BackendProfile, read_until, run
from tests.netns import inside_netns
from tests.netns import outside as netns_outside

pytestmark = pytest.mark.timeout(900)
OUTSIDE_HOST, OUTSIDE_PEER = "198.51.100.1", "198.51.100.2"  # TEST-NET-2, only inside our namespaces
MARKER = "outside-says-hello"
WEB = SecurityGroup(id="web", rules=(SecurityRule(Direction.INGRESS, Protocol.TCP, 5555, 5555, "0.0.0.0/0"),))


@dataclass
class Guest:
    name: str
    network: Network
    req: PortRequest
    handle: VmHandle
    console: ConsoleStream

    @property
    def ip(self) -> str:
        return self.req.ip_addresses[0]


@dataclass
class World:
    provider: BridgeProvider
    backend: HypervisorBackend
    guests: dict[str, Guest]

    def default_group(self, network_id: str) -> SecurityGroup:
        members = tuple(g.ip for g in self.guests.values() if g.network.id == network_id)
        return SecurityGroup(id="default", rules=(
            SecurityRule(Direction.EGRESS),
            SecurityRule(Direction.INGRESS, Protocol.ICMP, remote_group="default", remote_ips=members),
        ))

    async def set_groups(self, guest: str, *extra: SecurityGroup) -> None:
        g = self.guests[guest]
        await self.provider.update_security_groups(g.req.port_id, [self.default_group(g.network.id), *extra])


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    with inside_netns("e2e") as name:
        yield name


@pytest.fixture(scope="module")
def outside(netns: str) -> Iterator[str]:
    """A second namespace behind a veth, with a TCP server (busybox nc) on OUTSIDE_PEER:8000 saying MARKER."""
    with netns_outside(f"pvo{netns.rsplit('-', 1)[-1]}", OUTSIDE_HOST, OUTSIDE_PEER, MARKER) as name:
        yield name


async def _boot(world: World, profile: BackendProfile, store: SqliteStore, name: str, net: Network) -> None:
    vm = profile.vm(name)
    rec = await ports.create(store, net, vm_id=vm.id, nic_id="nic0")
    nic = NetworkSpec(id="nic0", network_id=net.id, mac_address=rec.port.mac_address)
    vm = dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=(nic,)))
    req = PortRequest(port_id=rec.port.id, network=net, mac_address=rec.port.mac_address,
                      ip_addresses=rec.port.ip_addresses, tap_device=tap_name(vm.id, "nic0"), vm_id=vm.id)
    await world.provider.create_port(req)  # the tap exists before QEMU opens it by name
    handle = await world.backend.create(vm, await profile.guest())
    await world.backend.start(handle)
    console = await world.backend.console(handle, ConsoleType.SERIAL)
    world.guests[name] = Guest(name, net, req, handle, console)


@pytest.fixture(scope="module")
async def world(netns: str, outside: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    binaries.require_now("qemu-system-x86_64", "qemu-img", "nft", "dnsmasq", "ip")
    made = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(made, str), made
    root = tmp_path_factory.mktemp("networld")
    store = await SqliteStore.open(root / "state.db")
    provider = BridgeProvider(BridgeSettings(state_dir=root / "net", table="pve2e", prefix="pve"))
    world = World(provider, made.make_backend(short_run_dir(root)), {})
    net_a = await networks.create(store, networks.NetworkRequest("org", "proj", "a", "10.71.0.0/24"))
    net_b = await networks.create(store, networks.NetworkRequest("org", "proj", "b", "10.72.0.0/24",
                                                                 egress_nat=True))
    try:
        for name, net in (("a1", net_a), ("a2", net_a), ("b1", net_b)):
            await _boot(world, made, store, name, net)
        for g in world.guests.values():
            await read_until(g.console, made.ready(g.handle), bytearray(), BOOT_DEADLINE_S)
            await world.set_groups(g.name)
        yield world
    finally:
        for g in world.guests.values():
            await g.console.close()
            await world.backend.kill(g.handle)
            await world.backend.delete(g.handle)
            await provider.delete_port(g.req.port_id)
        leftover = await links.names("pve")
        dhcp_left = [p for p in (root / "net").glob("net-*") if dhcp.running(p)]
        await provider.teardown()
        await store.close()
        assert leftover == [] and dhcp_left == [], (leftover, dhcp_left)


async def sh(world: World, guest: str, command: str, deadline_s: float = 90.0) -> str:
    return await run(world.guests[guest].console, command, deadline_s)


def pings(output: str) -> int:
    found = re.search(r"(\d+) packets received", output)
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
async def configured(world: World) -> World:
    """Each guest asks DHCP for its address (udhcpc prints the lease), then configures it."""
    for g in world.guests.values():
        out = await sh(world, g.name, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1")
        assert f"lease of {g.ip} obtained" in out, out
        gw = g.network.gateway_ip
        await sh(world, g.name, f"ip addr add {g.ip}/24 dev eth0; ip route add default via {gw}")
    return world


async def test_dhcp_and_ping_on_one_network(configured: World) -> None:
    a2 = configured.guests["a2"].ip
    assert pings(await sh(configured, "a1", f"ping -c 3 -W 3 {a2}")) >= 2
    assert pings(await sh(configured, "a2", f"ping -c 3 -W 3 {configured.guests['a1'].ip}")) >= 2


async def test_other_network_and_host_unreachable(configured: World) -> None:
    w = configured
    assert pings(await sh(w, "b1", f"ping -c 2 -W 2 {w.guests['a1'].ip}")) == 0
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {w.guests['b1'].ip}")) == 0
    # the host's own addresses other than the gateway are not reachable from a guest
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {OUTSIDE_HOST}")) == 0
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {w.guests['a1'].network.gateway_ip}")) >= 1


async def test_security_group_opens_and_closes_a_port(configured: World) -> None:
    w, a2 = configured, configured.guests["a2"].ip
    await sh(w, "a2", "nc -ll -p 5555 -e echo port-opened </dev/null >/dev/null 2>&1 & true")
    connect = f"nc -w 3 {a2} 5555 </dev/null 2>&1"
    assert "port-opened" not in await sh(w, "a1", connect)  # default: inbound TCP denied
    await w.set_groups("a2", WEB)
    assert "port-opened" in await sh(w, "a1", connect)
    await w.set_groups("a2")
    assert "port-opened" not in await sh(w, "a1", connect)


async def test_spoofed_ip_or_mac_sends_nothing(configured: World) -> None:
    w = configured
    a1, a2 = w.guests["a1"], w.guests["a2"].ip
    await sh(w, "a1", f"ip addr del {a1.ip}/24 dev eth0; ip addr add 10.71.0.222/24 dev eth0")
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {a2}")) == 0
    await sh(w, "a1", f"ip addr del 10.71.0.222/24 dev eth0; ip addr add {a1.ip}/24 dev eth0")
    assert pings(await sh(w, "a1", f"ping -c 3 -W 3 {a2}")) >= 1  # back to its own address: allowed again
    await sh(w, "a1", "ip link set eth0 down; ip link set eth0 address 52:54:00:de:ad:01; ip link set eth0 up")
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {a2}")) == 0
    await sh(w, "a1", f"ip link set eth0 down; ip link set eth0 address {a1.req.mac_address}; ip link set eth0 up;"
                      f" ip route add default via {a1.network.gateway_ip}")
    assert pings(await sh(w, "a1", f"ping -c 3 -W 3 {a2}")) >= 1


async def test_egress_nat_only_where_enabled(configured: World) -> None:
    fetch = f"nc -w 5 {OUTSIDE_PEER} 8000 </dev/null 2>&1"
    assert MARKER in await sh(configured, "b1", fetch)  # network B: NAT on
    assert MARKER not in await sh(configured, "a1", fetch)  # network A: NAT off


async def test_agent_restart_heals_plumbing(configured: World) -> None:
    """Plumbing lost while VMs run (bridge gone, rules flushed, dnsmasq killed) is rebuilt by a fresh
    provider from its records, as at agent start; the guests keep running and reconnect."""
    w = configured
    a2 = w.guests["a2"].ip
    bridge = w.provider.bridge_name(w.guests["a1"].network)
    await links.delete(bridge)
    await nft.apply(rules.teardown(w.provider.settings.table))
    await dhcp.stop(w.provider.settings.state_dir / f"net-{w.guests['a1'].network.id}")
    assert pings(await sh(w, "a1", f"ping -c 2 -W 2 {a2}")) == 0
    again = BridgeProvider(w.provider.settings)
    await again.restore()  # what the agent does at start (agent/ports.py), from the provider's records
    assert pings(await sh(w, "a1", f"ping -c 3 -W 3 {a2}")) >= 1
    out = await sh(w, "a2", "udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1")
    assert f"lease of {a2} obtained" in out, out
    for g in w.guests.values():
        assert (await w.backend.status(g.handle)).actual_state == VmState.RUNNING
