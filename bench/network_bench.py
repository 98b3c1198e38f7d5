"""Tenant-network costs of each provider (Linux bridge, OVN), inside a private network namespace.

    .venv/bin/python -m bench.network_bench [--ports 20] [--runs 3] [--provider bridge|ovn|all]

* port setup: `create_port` / `delete_port` per NIC on one network, median over `--ports` ports (bridge:
  tap + bridge membership + the whole nftables ruleset re-rendered + dnsmasq host list; ovn: NB rows
  through ovsdbapp + tap + the br-int port, waited for until ovs-vswitchd applied it);
* guest to guest (two QEMU/TCG guests, static addresses): TCP throughput (10 MiB sent by busybox `nc`,
  timed by busybox `time` in the receiver) and ping round trip, through the provider (bridge + nftables;
  or OVN: br-int on OVS's userspace datapath, ACLs, port security) and, with the same guests and taps, on
  a plain Linux bridge with no rules. Runs alternate so host load hits both alike; prints both medians
  and the ratios provider/plain. OVN's daemons are started for the run (`tests/ovn.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bench.common import emit, median
from plasmavmc.core.networks.groups import default_group
from plasmavmc.hypervisor.base import ConsoleStream, VmHandle
from plasmavmc.hypervisor.common import tap_name
from plasmavmc.network.base import NetworkProvider
from plasmavmc.network.bridge import links, nft, rules
from plasmavmc.network.bridge.provider import BridgeProvider, BridgeSettings
from plasmavmc.network.ovn.provider import OvnProvider, OvnSettings
from plasmavmc.types.network import Network, PortRequest
from plasmavmc.types.vm import ConsoleType, NetworkSpec
from tests import ovn
from tests.conftest import short_run_dir
from tests.contract.backends import BACKEND_FACTORIES, BOOT_DEADLINE_S, read_until, run
from tests.netns import inside_netns

NET = Network(id="bench-net", cidr="10.81.0.0/24", vni=0x81)
PLAIN = "pvbplain"
BYTES = 160 * 65536


def _req(n: int, tap: str, vm_id: str = "") -> PortRequest:
    return PortRequest(port_id=f"bench-{n}", network=NET, mac_address=f"52:54:00:81:00:{n:02x}",
                       ip_addresses=(f"10.81.0.{n + 10}",), tap_device=tap, vm_id=vm_id,
                       security_groups=(default_group(NET),))


@dataclasses.dataclass
class Engine:
    provider: NetworkProvider
    unplug: Callable[[list[str]], Awaitable[None]]  # take the taps off the provider's datapath
    teardown: Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def engine(kind: str, state: Path) -> AsyncIterator[Engine]:
    if kind == "bridge":
        bridge = BridgeProvider(BridgeSettings(state, table="pvbench", prefix="pvb"))

        async def unplug_bridge(_: list[str]) -> None:
            await nft.apply(rules.teardown("pvbench"))

        yield Engine(bridge, unplug_bridge, bridge.teardown)
        return
    central = ovn.OvnCentral.start(listen=None)  # the bench namespace has no loopback up
    node = ovn.OvnNode.start(central, "bench")
    provider = OvnProvider(OvnSettings(state, central.nb_unix, node.ovs_db, prefix="pvb"))

    async def unplug_ovn(taps: list[str]) -> None:
        for tap in taps:
            await asyncio.to_thread(provider.ovs.delete_port, tap)

    try:
        yield Engine(provider, unplug_ovn, provider.teardown)
    finally:
        await provider.close()
        node.stop()
        central.stop()


async def port_setup(kind: str, root: Path, count: int) -> dict[str, float]:
    async with engine(kind, root / f"ports-{kind}") as made:
        provider = made.provider
        create, delete = [], []
        for n in range(count):
            start = time.perf_counter()
            await provider.create_port(_req(n, f"pvbtap{n}"))
            create.append(time.perf_counter() - start)
        for n in range(count):
            start = time.perf_counter()
            await provider.delete_port(f"bench-{n}")
            delete.append(time.perf_counter() - start)
        await made.teardown()
    return {"ports": count, "create_ms_median": round(median(create) * 1000, 1),
            "create_ms_last": round(create[-1] * 1000, 1), "delete_ms_median": round(median(delete) * 1000, 1)}


async def measure_pair(a: ConsoleStream, b: ConsoleStream, ip_b: str) -> tuple[float, float]:
    await run(b, f"nc -l -p 5001 -e dd if=/dev/zero bs=65536 count={BYTES // 65536} </dev/null >/dev/null 2>&1 & true")
    out = await run(a, f"time sh -c 'nc {ip_b} 5001 </dev/null | wc -c' 2>&1", 180)
    got = re.search(r"^(\d+)$", out, re.M)
    real = re.search(r"real\s+(\d+)m\s*([\d.]+)s", out)
    assert got and int(got.group(1)) == BYTES and real, out
    seconds = int(real.group(1)) * 60 + float(real.group(2))
    ping = await run(a, f"ping -c 20 -i 0.2 {ip_b}", 120)
    rtt = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", ping)
    assert rtt, ping
    return BYTES / seconds / 2**20, float(rtt.group(1))


async def _plain(made: Engine, taps: list[str]) -> None:
    """The same taps on a bridge with no rules at all (off the provider's datapath, its rules removed)."""
    await made.unplug(taps)
    await links.ensure_bridge(PLAIN, "10.81.0.254", 24)
    for tap in taps:
        await links.ensure_tap(tap, PLAIN)


async def guests(kind: str, root: Path, runs: int) -> dict[str, object]:
    async with engine(kind, root / f"guests-{kind}") as made:
        return await _guests(made, root, runs)


async def _guests(made: Engine, root: Path, runs: int) -> dict[str, object]:
    profile = BACKEND_FACTORIES["qemu"]()
    assert not isinstance(profile, str), profile
    backend = profile.make_backend(short_run_dir(root))
    provider = made.provider
    handles: list[VmHandle] = []
    consoles: list[ConsoleStream] = []
    reqs: list[PortRequest] = []
    try:
        for n in (1, 2):
            vm = profile.vm(f"nb{n}")
            req = _req(n, tap_name(vm.id, "nic0"), vm.id)
            nic = NetworkSpec(id="nic0", network_id=NET.id, mac_address=req.mac_address)
            vm = dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, network=(nic,)))
            await provider.create_port(req)
            handle = await backend.create(vm, await profile.guest())
            await backend.start(handle)
            console = await backend.console(handle, ConsoleType.SERIAL)
            await read_until(console, profile.ready(handle), bytearray(), BOOT_DEADLINE_S)
            await run(console, f"ip link set eth0 up; ip addr add {req.ip_addresses[0]}/24 dev eth0")
            handles.append(handle)
            consoles.append(console)
            reqs.append(req)
        samples: dict[str, list[tuple[float, float]]] = {"provider": [], "plain": []}
        for _ in range(runs):
            await provider.restore()  # back onto the provider's bridge, rules rendered again
            samples["provider"].append(await measure_pair(consoles[0], consoles[1], reqs[1].ip_addresses[0]))
            await _plain(made, [r.tap_device for r in reqs])
            samples["plain"].append(await measure_pair(consoles[0], consoles[1], reqs[1].ip_addresses[0]))
    finally:
        for console in consoles:
            await console.close()
        for handle in handles:
            await backend.kill(handle)
            await backend.delete(handle)
        await made.teardown()
        await links.delete(PLAIN)
    return traffic_figures(samples, "provider", "plain")


def traffic_figures(samples: dict[str, list[tuple[float, float]]], path: str, baseline: str) -> dict[str, object]:
    """Medians of (MiB/s, RTT ms) samples per path, and the ratios of `path` over `baseline`."""
    mib = {k: median([s[0] for s in v]) for k, v in samples.items()}
    rtt = {k: median([s[1] for s in v]) for k, v in samples.items()}
    return {
        "tcp_mib_s": {k: round(v, 2) for k, v in mib.items()},
        "rtt_ms": {k: round(v, 3) for k, v in rtt.items()},
        f"ratio_throughput_{path}_over_{baseline}": round(mib[path] / mib[baseline], 3),
        f"ratio_rtt_{path}_over_{baseline}": round(rtt[path] / rtt[baseline], 3),
        "samples": samples,
    }


async def main(ports: int, runs: int, kinds: list[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="pvnet-bench-"))
    results: dict[str, object] = {}
    try:
        for kind in kinds:
            results[kind] = {"port_setup": await port_setup(kind, root, ports),
                             "guest_to_guest": await guests(kind, root, runs)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit("network_bench", providers=results, runs=runs,
         note="QEMU under TCG: guest CPU bounds both paths; the ratio is what the provider adds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--provider", choices=["bridge", "ovn", "all"], default="all")
    args = parser.parse_args()
    with inside_netns("bench"):
        asyncio.run(main(args.ports, args.runs, ["bridge", "ovn"] if args.provider == "all" else [args.provider]))
