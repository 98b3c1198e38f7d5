"""Tenant networks across two nodes through ONE control plane: VXLAN peers and forwarding from the store.

The harness (`tests/two_nodes.py`): a hub namespace with the server, two node namespaces each with its
agent (bridge provider, `[network] underlay_address`), joined by a veth underlay. The outer test makes
the hub and runs this file's inner tests there.

Inner: networks `blue` and `red` made through the API; `b1` on blue pinned to node-a, `b2` on blue and
`r1` on red pinned to node-b (node selector on the agents' `host` label). Each node reports its underlay
address; each node's VXLAN device for blue holds the other node as flood peer and a static FDB entry for
the other node's port, as the control plane computed them. Every guest gets its API address by DHCP; b1
and b2 ping each other across the tunnel and 1 MiB of TCP crosses it in full-size frames; r1 reaches
neither. An agent whose overlay entries and records
are gone gets them back from the control plane when it restarts. Deleting the VMs and the networks leaves
no VXLAN device, bridge, tap, nftables rule or dnsmasq on either node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.client.console_ws import open_console
from plasmavmc.errors import PlasmaError
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.network.bridge import links
from plasmavmc.types.network import Network
from plasmavmc.types.vm import NetworkSpec, PlacementSpec, VirtualMachine
from tests import binaries, two_nodes
from tests.conftest import needs_qemu
from tests.contract.backends import run
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec, until
from tests.e2e.test_qemu_api import WsStream
from tests.two_nodes import INNER, NodeNs, TwoNodes, inner_only

pytestmark = [needs_qemu, binaries.require("nft", "dnsmasq", "ip"), pytest.mark.timeout(1800)]
PLACES = (("b1", "blue", "node-a"), ("b2", "blue", "node-b"), ("r1", "red", "node-b"))
PREFIX = two_nodes.BRIDGE_NAME[:5]


@pytest.mark.skipif(INNER in os.environ, reason="this is the inner run")
def test_two_nodes_one_control_plane() -> None:
    two_nodes.run_inside_hub(__file__, expect_passed=6, timeout=1700)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[TwoNodes]:
    c = two_nodes.start(tmp_path_factory.mktemp("twonodes"), guest_dir)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def api(cluster: TwoNodes) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(cluster.api) as c:
        await cluster.wait_nodes(c)
        yield c


@pytest.fixture(scope="module")
async def nets(api: PlasmaClient) -> dict[str, Network]:
    return {name: await api.create_network(ORG, PROJECT, name, cidr)
            for name, cidr in (("blue", "10.77.0.0/24"), ("red", "10.78.0.0/24"))}


@pytest.fixture(scope="module")
async def vms(api: PlasmaClient, nets: dict[str, Network]) -> AsyncIterator[dict[str, VirtualMachine]]:
    made: dict[str, VirtualMachine] = {}
    try:
        for name, net, node in PLACES:
            spec = dataclasses.replace(tiny_spec(), network=(NetworkSpec(id="nic0", network_id=net),),
                                       placement=PlacementSpec(node_selector={"host": node}))
            made[name] = await api.create_vm(name, ORG, PROJECT, spec)
            assert made[name].node_id == node
            await api.start_vm(ORG, PROJECT, made[name].id)
        for vm in made.values():
            await console_until(api, vm.id, f"PLASMAVMC-READY name={vm.name} ", timeout=400)
        yield made
    finally:
        for vm in made.values():
            with contextlib.suppress(PlasmaError):  # the last test deleted them already
                await api.delete_vm(ORG, PROJECT, vm.id, force=True)


def node(cluster: TwoNodes, node_id: str) -> NodeNs:
    return next(n for n in cluster.nodes if n.id == node_id)


def mac(vm: VirtualMachine) -> str:
    return vm.spec.network[0].mac_address


async def overlay(cluster: TwoNodes, node_id: str, net: Network) -> tuple[dict[str, str], set[str]]:
    """(static FDB, flood peers) of `net`'s VXLAN device on node `node_id`."""
    with cluster.inside(node(cluster, node_id)):
        vxlan = f"{PREFIX}v{net.vni:06x}"
        assert await links.exists(vxlan), f"no VXLAN device {vxlan} on {node_id}"
        return await links.static_fdb(vxlan), await links.flood_peers(vxlan)


@inner_only
async def test_inner_nodes_report_their_underlay(api: PlasmaClient, cluster: TwoNodes) -> None:
    for n in cluster.nodes:
        assert (await api.get_node(n.id)).underlay_address == n.underlay


@inner_only
async def test_inner_peers_and_forwarding_from_the_store(cluster: TwoNodes, nets: dict[str, Network],
                                                         vms: dict[str, VirtualMachine]) -> None:
    a, b = (n.underlay for n in cluster.nodes)
    assert await overlay(cluster, "node-a", nets["blue"]) == ({mac(vms["b2"]): b}, {b})
    assert await overlay(cluster, "node-b", nets["blue"]) == ({mac(vms["b1"]): a}, {a})
    assert await overlay(cluster, "node-b", nets["red"]) == ({}, set())  # red is on node-b only


async def dhcp(cluster: TwoNodes, api: PlasmaClient, vm: VirtualMachine, gateway: str) -> str:
    """The guest asks for its address (it must be the API's), takes it, and routes everything else via
    its network's gateway (so a packet to another network really leaves the guest)."""
    ip = (await api.get_vm(ORG, PROJECT, vm.id)).spec.network[0].ip_address
    shell = WsStream(await open_console(cluster.console, ORG, PROJECT, vm.id))
    try:
        out = await run(shell, "ip link set eth0 up; udhcpc -i eth0 -n -q -t 8 -T 2 -s /bin/true 2>&1", 120)
        assert f"lease of {ip} obtained" in out, out
        await run(shell, f"ip addr add {ip}/24 dev eth0; ip route add default via {gateway}")
    finally:
        await shell.close()
    return ip


async def ping(cluster: TwoNodes, vm: VirtualMachine, ip: str) -> str:
    shell = WsStream(await open_console(cluster.console, ORG, PROJECT, vm.id))
    try:
        return await run(shell, f"ping -c 3 -W 3 {ip}", 120)
    finally:
        await shell.close()


@inner_only
async def test_inner_dhcp_and_ping_across_nodes_not_across_networks(
        cluster: TwoNodes, api: PlasmaClient, nets: dict[str, Network], vms: dict[str, VirtualMachine]) -> None:
    gateways = {net: nets[net].gateway for _, net, _ in PLACES}
    ips = {name: await dhcp(cluster, api, vms[name], gateways[net]) for name, net, _ in PLACES}
    assert all(gateways.values())  # the API shows the gateway the datapath uses
    assert re.search(r"[123] packets received", await ping(cluster, vms["b1"], ips["b2"]))
    assert re.search(r"[123] packets received", await ping(cluster, vms["b2"], ips["b1"]))
    for target in ("b1", "b2"):  # across nodes and on the same node: red reaches no blue guest
        out = await ping(cluster, vms["r1"], ips[target])
        assert re.search(r"\b0 packets received", out), out


@inner_only
async def test_inner_full_size_frames_cross_the_tunnel(cluster: TwoNodes, api: PlasmaClient,
                                                       vms: dict[str, VirtualMachine]) -> None:
    """1 MiB over TCP from b2 to b1: full-size frames (the guests' MTU is 1500) cross the VXLAN tunnel."""
    b2_ip = (await api.get_vm(ORG, PROJECT, vms["b2"].id)).spec.network[0].ip_address
    server = WsStream(await open_console(cluster.console, ORG, PROJECT, vms["b2"].id))
    client = WsStream(await open_console(cluster.console, ORG, PROJECT, vms["b1"].id))
    try:
        await run(server, "nc -l -p 5001 -e dd if=/dev/zero bs=65536 count=16 </dev/null >/dev/null 2>&1 & true")
        out = await run(client, f"nc -w 20 {b2_ip} 5001 </dev/null | wc -c", 120)
        assert re.search(r"^1048576$", out, re.M), out
    finally:
        await server.close()
        await client.close()


@inner_only
async def test_inner_restarted_agent_is_told_again(cluster: TwoNodes, nets: dict[str, Network],
                                                   vms: dict[str, VirtualMachine]) -> None:
    """node-a loses its overlay entries and their record; its agent restarts; the control plane's push on
    the new agent's first heartbeat puts them back (not the node's own records: they are gone)."""
    na = node(cluster, "node-a")
    vxlan = f"{PREFIX}v{nets['blue'].vni:06x}"
    assert na.agent is not None
    na.agent.stop()
    with cluster.inside(na):
        await links.set_fdb(vxlan, {})
        await links.set_flood_peers(vxlan, set())
    for record in (na.root / "net").glob("net-*/overlay.json"):
        record.unlink()
    na.agent.start()
    want = ({mac(vms["b2"]): node(cluster, "node-b").underlay}, {node(cluster, "node-b").underlay})

    async def restored() -> bool:
        cluster.check_alive()
        return await overlay(cluster, "node-a", nets["blue"]) == want

    await until(restored, "node-a's overlay pushed again after its agent restarted", timeout=90)


def leftovers(cluster: TwoNodes, n: NodeNs, taps: list[str]) -> list[str]:
    """What is left of tenant networking on node `n`: links, nftables rules, dnsmasq processes."""
    found = []
    exec_ = ["ip", "netns", "exec", n.ns]
    shown = subprocess.run([*exec_, "ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    found += [line.split(": ")[1] for line in shown.stdout.splitlines()
              if line.split(": ")[1].split("@")[0].startswith((PREFIX, *taps))]
    ruleset = subprocess.run([*exec_, "nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=True)
    found += [f"nft rule {item['rule'].get('chain')}" for item in json.loads(ruleset.stdout)["nftables"]
              if "rule" in item]
    state = str(n.root / "net")
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = proc.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"dnsmasq") and any(state.encode() in a for a in argv):
            found.append(f"dnsmasq pid {proc.parent.name}")
    found += [str(p) for p in (n.root / "net").glob("net-*")]
    return found


@inner_only
async def test_inner_delete_leaves_nothing_on_either_node(cluster: TwoNodes, api: PlasmaClient,
                                                          nets: dict[str, Network],
                                                          vms: dict[str, VirtualMachine]) -> None:
    taps = [tap_name(vm.id, "nic0") for vm in vms.values()]
    assert leftovers(cluster, node(cluster, "node-a"), taps)  # the check can fail: before, there is plumbing
    for vm in vms.values():
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)
    for net in nets.values():
        await api.delete_network(ORG, PROJECT, net.id)
    for n in cluster.nodes:
        assert leftovers(cluster, n, taps) == [], n.id
