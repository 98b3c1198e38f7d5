"""What crossing nodes costs on the bridge provider: guest to guest over VXLAN vs plain L2 over the same wire.

    .venv/bin/python -m bench.vxlan_bench [--runs 3]

Two network namespaces stand for two nodes, joined by two veth pairs: the underlay (192.0.2.1/.2, which
the provider's VXLAN devices use) and a second, unaddressed one. One QEMU/TCG guest per node, static
addresses. Through the provider, a packet goes tap → the network's bridge (nftables anti-spoofing and
security groups) → VXLAN (as the control plane would set it: flood peer and a static FDB entry for the
other guest's MAC, `update_overlay`) → underlay. The baseline, in the same run with the same guests and
taps: each node's tap on a plain bridge with no rules, the two bridges joined by the second veth. Runs
alternate so host load hits both alike; prints TCP throughput (busybox `nc`, 10 MiB) and ping round trip,
medians and the ratios provider/plain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from pyroute2 import netns as pnetns

from bench.common import emit
from bench.network_bench import measure_pair, traffic_figures
from plasmavmc.core.networks.groups import default_group
from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, VmHandle
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.network.bridge import links, nft, rules
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.types.network import FdbEntry, Network, NetworkPeers, PortRequest
from plasmavmc.types.vm import ConsoleType, NetworkSpec
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, BOOT_DEADLINE_S, BackendProfile, read_until, run
from tests.netns import unique_name

NET = Network(id="vxb-net", cidr="10.82.0.0/24", vni=0x82B)
UNDERLAY = ("192.0.2.1", "192.0.2.2")
PLAIN = "pvxplain"
TABLE = "pvxb"


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    pnetns.pushns(ns)
    try:
        yield
    finally:
        pnetns.popns()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Two "nodes": veth `u0` (the underlay, addressed) and veth `p0` (the baseline's wire) between them."""
    names = (unique_name("vxba"), unique_name("vxbb"))
    try:
        for ns in names:
            _ip("netns", "add", ns)
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for dev in ("u0", "p0"):
            _ip("netns", "exec", names[0], "ip", "link", "add", dev, "type", "veth", "peer", "name", dev,
                "netns", names[1])
        for ns, addr in zip(names, UNDERLAY, strict=True):
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", "u0")
            for dev in ("u0", "p0"):
                _ip("netns", "exec", ns, "ip", "link", "set", dev, "up")
        yield names
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)


@dataclasses.dataclass
class Node:
    ns: str
    provider: BridgeProvider
    req: PortRequest
    handle: VmHandle | None = None
    console: ConsoleStream | None = None


async def _boot(node: Node, profile: BackendProfile, backend: HypervisorBackend, name: str) -> None:
    vm = profile.vm(name)
    vm = dataclasses.replace(vm, id=node.req.vm_id)
    nic = NetworkSpec(id="nic0", network_id=NET.id, mac_address=node.req.mac_address)
    vm = dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=(nic,)))
    with entered(node.ns):
        await node.provider.create_port(node.req)
        node.handle = await backend.create(vm, await profile.guest())
        await backend.start(node.handle)
    node.console = await backend.console(node.handle, ConsoleType.SERIAL)
    await read_until(node.console, profile.ready(node.handle), bytearray(), BOOT_DEADLINE_S)
    await run(node.console, f"ip link set eth0 up; ip addr add {node.req.ip_addresses[0]}/24 dev eth0")


async def _through_provider(nodes: list[Node], revision: int) -> None:
    for i, node in enumerate(nodes):
        other = nodes[1 - i]
        view = NetworkPeers(NET, (UNDERLAY[1 - i],), (FdbEntry(other.req.mac_address, UNDERLAY[1 - i]),), revision)
        with entered(node.ns):
            await node.provider.restore()  # the tap back onto the provider's bridge, rules rendered again
            await node.provider.update_overlay(view)


async def _plain(nodes: list[Node]) -> None:
    for node in nodes:
        with entered(node.ns):
            await nft.apply(rules.teardown(TABLE))
            await links.ensure_bridge(PLAIN, f"10.82.0.{250 + nodes.index(node)}", 24)
            await links.ensure_tap(node.req.tap_device, PLAIN)
            await links.ensure_tap("p0", PLAIN)  # the veth: enslaved like a tap


async def across(root: Path, names: tuple[str, str], runs: int) -> dict[str, object]:
    profile = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(profile, str), profile
    backend = profile.make_backend(short_run_dir(root))
    nodes = []
    for i, ns in enumerate(names):
        settings = BridgeSettings(root / f"node{i}", table=TABLE, prefix="pvxb", vxlan_local=UNDERLAY[i])
        vm_id = str(uuid.uuid4())
        req = PortRequest(port_id=f"vxb-{i}", network=NET, mac_address=f"52:54:00:82:00:0{i + 1}",
                          ip_addresses=(f"10.82.0.{i + 11}",), tap_device=tap_name(vm_id, "nic0"),
                          security_groups=(default_group(NET),), vm_id=vm_id)
        nodes.append(Node(ns, BridgeProvider(settings), req))
    samples: dict[str, list[tuple[float, float]]] = {"vxlan": [], "plain": []}
    try:
        for i, node in enumerate(nodes):
            await _boot(node, profile, backend, f"vxb{i}")
        a, b = nodes[0].console, nodes[1].console
        assert a is not None and b is not None
        for n in range(runs):
            await _through_provider(nodes, n + 1)
            samples["vxlan"].append(await measure_pair(a, b, nodes[1].req.ip_addresses[0]))
            await _plain(nodes)
            samples["plain"].append(await measure_pair(a, b, nodes[1].req.ip_addresses[0]))
    finally:
        for node in nodes:
            if node.console is not None:
                await node.console.close()
            if node.handle is not None:
                await backend.kill(node.handle)
                await backend.delete(node.handle)
            with entered(node.ns):
                await node.provider.teardown()
                await links.delete(PLAIN)
    return traffic_figures(samples, "vxlan", "plain")


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="pvnet-vxbench-"))
    try:
        with two_namespaces() as names:
            traffic = await across(root, names, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit("vxlan_bench", guest_to_guest_across_nodes=traffic, runs=runs,
         note="QEMU under TCG: guest CPU bounds both paths; the ratio is what the provider and VXLAN add")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
