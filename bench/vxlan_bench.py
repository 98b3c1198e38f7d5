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
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.common import emit
from bench.network_bench import measure_pair, traffic_figures
from plasmavmc.network.bridge import links, nft, rules
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.types.network import FdbEntry, Network, NetworkPeers
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, run
from tests.ns_guests import UNDERLAY, NsGuest, boot, entered, guest_port, stop, two_namespaces

NET = Network(id="vxb-net", cidr="10.82.0.0/24", vni=0x82B)
PLAIN = "pvxplain"
TABLE = "pvxb"


Node = NsGuest[BridgeProvider]


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


async def _unplug(node: NsGuest[Any]) -> None:
    await links.delete(PLAIN)


async def across(root: Path, names: tuple[str, str], runs: int) -> dict[str, object]:
    profile = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(profile, str), profile
    backend = profile.make_backend(short_run_dir(root))
    nodes = []
    for i, ns in enumerate(names):
        settings = BridgeSettings(root / f"node{i}", table=TABLE, prefix="pvxb", vxlan_local=UNDERLAY[i])
        req = guest_port(NET, f"vxb-{i}", f"52:54:00:82:00:0{i + 1}", f"10.82.0.{i + 11}")
        nodes.append(Node(ns, BridgeProvider(settings), req))
    samples: dict[str, list[tuple[float, float]]] = {"vxlan": [], "plain": []}
    try:
        await boot(nodes, profile, backend, "vxb")
        for node in nodes:
            assert node.console is not None
            await run(node.console, f"ip link set eth0 up; ip addr add {node.req.ip_addresses[0]}/24 dev eth0")
        a, b = nodes[0].console, nodes[1].console
        assert a is not None and b is not None
        for n in range(runs):
            await _through_provider(nodes, n + 1)
            samples["vxlan"].append(await measure_pair(a, b, nodes[1].req.ip_addresses[0]))
            await _plain(nodes)
            samples["plain"].append(await measure_pair(a, b, nodes[1].req.ip_addresses[0]))
    finally:
        await stop(nodes, backend, after=_unplug)
    return traffic_figures(samples, "vxlan", "plain")


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="pvnet-vxbench-"))
    try:
        with two_namespaces("vxb", extra_wires=("p0",)) as names:
            traffic = await across(root, names, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit("vxlan_bench", guest_to_guest_across_nodes=traffic, runs=runs,
         note="QEMU under TCG: guest CPU bounds both paths; the ratio is what the provider and VXLAN add")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
