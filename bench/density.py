"""How many real tiny-guest QEMU VMs this host holds, and what each idle one costs it.

    nice -n 10 .venv/bin/python -m bench.density [--vms 100] [--before 4] [--memory-mib 128]

Through a real server and agent (SQLite, one node), VMs are created and started one after another,
each waited for until its guest's ready line is on the console, until `--vms` are ready or the host
refuses: the run stops before a VM would leave less than `--floor-gib` (default 4) of MemAvailable,
since other processes share the machine (or after `--budget-s`, on a busy machine). Then, with every
VM idle, over `--window` seconds:

* `per_vm`: each QEMU's RSS and PSS, and the part beyond guest RAM (`hypervisor/footprint.py`);
  the per-VM overhead as the agent reports it (GetVm `resource_usage.memory_overhead_*`);
  host CPU per idle VM (QEMU CPU time over the window, % of one CPU); the drop of MemAvailable per VM
  (noisy where others share the host); the agent's RSS growth per VM.
* `before`: the same with the TCG translation cache uncapped (`tcg_tb_size_mib = 0`, QEMU's default),
  `--before` VMs, in the same run: the baseline of the cut; `ratio` = overhead after / before.

Prints one JSON document (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, median
from plasmavmc.client import PlasmaClient
from plasmavmc.config.agent import KvmSettings
from plasmavmc.errors import PlasmaError
from plasmavmc.hypervisor import footprint
from plasmavmc.hypervisor.process import cpu_seconds, rss_bytes
from tests.conftest import GUEST_DIR, Cluster, kill_leftover_qemu, launch, write_configs
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

MIB = 2**20
READY_TIMEOUT_S = 300.0


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable missing from /proc/meminfo")


def start(root: Path, tb_size_mib: int) -> Cluster:
    root.mkdir(parents=True, exist_ok=True)
    server_cfg, agent_cfg, api, http, _ = write_configs(root, GUEST_DIR, "density")
    # 100 one-vCPU idle VMs on a 2-core host: vCPUs (and the 1 GiB sparse disks) over-committed on purpose
    server_cfg.write_text(server_cfg.read_text()
                          + "[scheduler]\ncpu_overcommit_ratio = 64.0\nstorage_overcommit_ratio = 20.0\n")
    # a heartbeat of many VMs on a busy machine can take longer than the tests' 10 s timeout
    server_cfg.write_text(server_cfg.read_text().replace("heartbeat_timeout_seconds = 10",
                                                         "heartbeat_timeout_seconds = 120"))
    text = agent_cfg.read_text().replace("heartbeat_interval_seconds = 1", "heartbeat_interval_seconds = 5")
    agent_cfg.write_text(text.replace("[hypervisors.kvm]\n", f"[hypervisors.kvm]\ntcg_tb_size_mib = {tb_size_mib}\n"))
    return launch(root, server_cfg, agent_cfg, api, http, "density")


async def fill(client: PlasmaClient, count: int, memory_mib: int, floor: int,
               budget_s: float) -> tuple[list[str], list[float], str]:
    """Start VMs one after another until `count` are ready, the next would cross `floor`, or `budget_s`
    (0: none) has passed."""
    ids: list[str] = []
    boots: list[float] = []
    step = (memory_mib + 128) * MIB  # guest + a generous overhead: the next VM must fit above the floor
    filling_since = time.monotonic()
    for i in range(count):
        if mem_available() - step < floor:
            return ids, boots, f"stopped at {i}: MemAvailable {mem_available() // MIB} MiB near the floor"
        if budget_s and time.monotonic() - filling_since > budget_s:
            return ids, boots, f"stopped at {i}: the time budget of {budget_s:.0f} s was spent"
        began = time.perf_counter()
        try:
            vm = await client.create_vm(f"d-{i}", ORG, PROJECT, tiny_spec(memory_mib), start=True)
        except PlasmaError as err:  # the host (or control plane) refused: measure what runs
            return ids, boots, f"stopped at {i}: {err.code}: {err.message[:200]}"
        ids.append(vm.id)
        await console_until(client, vm.id, f"PLASMAVMC-READY name=d-{i} ", timeout=READY_TIMEOUT_S)
        boots.append(time.perf_counter() - began)
    return ids, boots, f"{count} ready"


async def idle_figures(client: PlasmaClient, ids: list[str], memory_mib: int, window: float) -> dict[str, Any]:
    vms = [await client.get_vm(ORG, PROJECT, i) for i in ids]
    pids = [v.status.host_pid or 0 for v in vms]
    cpu0, t0 = [cpu_seconds(p) or 0.0 for p in pids], time.monotonic()
    await asyncio.sleep(window)  # a measuring window, not a synchronisation
    cpu1, t1 = [cpu_seconds(p) or 0.0 for p in pids], time.monotonic()
    prints = [footprint.measure(p, memory_mib * MIB) for p in pids]
    reported = [(await client.get_vm(ORG, PROJECT, i)).status.resource_usage for i in ids]
    return {
        "qemu_rss_mib": median([f.rss / MIB for f in prints]),
        "qemu_pss_mib": median([f.pss / MIB for f in prints]),
        "guest_ram_resident_mib": median([f.guest_rss / MIB for f in prints]),
        "overhead_rss_mib": median([float(f.overhead_rss_mib) for f in prints]),
        "overhead_pss_mib": median([float(f.overhead_pss_mib) for f in prints]),
        "agent_reported_overhead_rss_mib": median([float(u.memory_overhead_rss_mib) for u in reported]),
        "agent_reported_overhead_pss_mib": median([float(u.memory_overhead_pss_mib) for u in reported]),
        "idle_cpu_percent_per_vm": 100 * sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / (t1 - t0) / len(ids),
    }


async def phase(root: Path, tb_size_mib: int, count: int, memory_mib: int, floor: int, window: float,
                budget_s: float = 0.0) -> dict[str, Any]:
    cluster = start(root, tb_size_mib)
    try:
        assert cluster.agent.popen is not None
        agent_pid = cluster.agent.popen.pid
        async with await PlasmaClient.connect(cluster.api) as client:
            agent0, avail0 = rss_bytes(agent_pid), mem_available()
            ids, boots, why = await fill(client, count, memory_mib, floor, budget_s)
            if not ids:
                return {"tcg_tb_size_mib": tb_size_mib, "vms_ready": 0, "stopped": why}
            figures = await idle_figures(client, ids, memory_mib, window)
            figures.update(
                memavailable_drop_per_vm_mib=(avail0 - mem_available()) / len(ids) / MIB,
                agent_rss_growth_per_vm_kib=(rss_bytes(agent_pid) - agent0) / len(ids) / 1024,
            )
            for vm_id in ids:
                await client.delete_vm(ORG, PROJECT, vm_id, force=True)
        return {"tcg_tb_size_mib": tb_size_mib, "vms_ready": len(ids), "stopped": why,
                "start_to_ready_s": {"median": median(boots), "first": boots[0], "last": boots[-1]},
                "per_vm": figures}
    finally:
        cluster.agent.stop()
        cluster.server.stop()
        kill_leftover_qemu(root)


async def main(args: argparse.Namespace) -> None:
    floor = int(args.floor_gib * 2**30)
    with tempfile.TemporaryDirectory(prefix="density-fast-") as tmp:
        load0 = os.getloadavg()
        before = await phase(Path(tmp) / "before", 0, args.before, args.memory_mib, floor, args.window)
        after = await phase(Path(tmp) / "after", args.tb_size_mib, args.vms, args.memory_mib, floor, args.window,
                            args.budget_s)
        load1 = os.getloadavg()
    ratio = None
    if "per_vm" in before and "per_vm" in after:
        ratio = {k: after["per_vm"][k] / before["per_vm"][k] for k in ("overhead_rss_mib", "overhead_pss_mib")
                 if before["per_vm"][k]}
    emit("density", guest="plasmavmc-tiny (QEMU microvm, TCG)", memory_mib=args.memory_mib,
         before=before, after=after, ratio_after_to_before=ratio,
         load_average={"start": load0, "end": load1},
         note="per-VM figures are medians over the VMs, measured with all of them idle")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--before", type=int, default=4, help="VMs in the uncapped baseline phase")
    parser.add_argument("--memory-mib", type=int, default=128)
    parser.add_argument("--tb-size-mib", type=int, default=KvmSettings.tcg_tb_size_mib,
                        help="the cap of the 'after' phase")
    parser.add_argument("--floor-gib", type=float, default=4.0, help="never leave less MemAvailable than this")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of idle CPU measurement")
    parser.add_argument("--budget-s", type=float, default=0.0, help="stop starting VMs after this long (0: never)")
    asyncio.run(main(parser.parse_args()))
