"""Per-VM host overhead, end to end with a real server, agent and QEMU tiny guest.

* QEMU runs under TCG with its translation cache capped (`-accel tcg,tb-size=64`, the
  `[hypervisors.kvm] tcg_tb_size_mib` default) — checked on the real process's command line;
* the agent reports the VM's memory beyond guest RAM (`resource_usage.memory_overhead_rss_mib` /
  `_pss_mib`, from /proc/PID/smaps) and its PSS, and the figures are sane: above zero, below the whole
  process's resident set, and the guest RAM resident plus the overhead is the process's RSS;
* the node's capacity accounting claims guest memory plus the per-VM overhead of its hypervisor
  (`[scheduler] vm_memory_overhead_mib`), and gives it all back on delete.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from plasmavmc.client import PlasmaClient
from plasmavmc.config.server import VM_MEMORY_OVERHEAD_MIB
from plasmavmc.hypervisor import footprint
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import ResourceUsage
from tests.conftest import Cluster, needs_qemu
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

pytestmark = needs_qemu
GUEST_MIB = 256
DEADLINE_S = 120.0


async def reported_usage(client: PlasmaClient, vm_id: str) -> ResourceUsage:
    """The VM's usage once a heartbeat carried the overhead figures (polled with a deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        usage = (await client.get_vm(ORG, PROJECT, vm_id)).status.resource_usage
        if usage.memory_pss_mib > 0:
            return usage
        assert time.monotonic() < deadline, f"no memory figures reported: {usage}"
        await asyncio.sleep(0.5)


async def test_overhead_is_reported_and_reserved(cluster: Cluster, client: PlasmaClient) -> None:
    node0 = (await client.list_nodes())[0]
    vm = await client.create_vm("overhead", ORG, PROJECT, tiny_spec(GUEST_MIB))
    node1 = next(n for n in await client.list_nodes() if n.id == node0.id)
    assert node1.allocated.memory_mib - node0.allocated.memory_mib == GUEST_MIB + VM_MEMORY_OVERHEAD_MIB["kvm"]

    vm = await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, "PLASMAVMC-READY name=overhead ", timeout=DEADLINE_S)
    pid = vm.status.host_pid
    assert pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    accel = argv[argv.index(b"-accel") + 1]
    assert accel in (b"tcg,tb-size=64", b"kvm"), accel

    usage = await reported_usage(client, vm.id)
    assert 0 < usage.memory_overhead_rss_mib < usage.memory_used_mib, usage
    assert 0 < usage.memory_overhead_pss_mib <= usage.memory_pss_mib, usage
    now = footprint.measure(pid, GUEST_MIB * footprint.MIB)
    assert 0 < now.guest_rss <= GUEST_MIB * footprint.MIB  # the guest's RAM mapping was found
    assert now.guest_rss + now.overhead_rss_mib * footprint.MIB <= now.rss
    assert now.overhead_rss_mib < 256, now  # capped TCG cache: far below QEMU's 1 GiB default

    await client.delete_vm(ORG, PROJECT, vm.id, force=True)
    deadline = time.monotonic() + DEADLINE_S
    while any(v.id == vm.id and v.state is not VmState.DELETED for v in await client.list_all_vms(ORG, PROJECT)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    node2 = next(n for n in await client.list_nodes() if n.id == node0.id)
    assert node2.allocated.memory_mib == node0.allocated.memory_mib
