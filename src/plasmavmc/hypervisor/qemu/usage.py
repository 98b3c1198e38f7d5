"""`ResourceUsage` of a running QEMU VM from real counters.

* CPU: the QEMU process's user+system time (/proc/<pid>/stat) as a percentage of one host CPU over the
  interval since the previous sample of the same VM (the first sample reads 0).
* Memory: the QEMU process's resident set (guest RAM the guest has touched, plus QEMU itself), its PSS
  and the part of both beyond guest RAM (`hypervisor/footprint.py`).
* Disk: `query-blockstats` summed over every device (rd_bytes, wr_bytes).
* Network: each NIC's tap device counters in /sys/class/net/<tap>/statistics; the tap's tx is what
  the guest received and its rx what the guest sent.
"""

from __future__ import annotations

import time
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import common, footprint
from plasmavmc.hypervisor.process import cpu_seconds, rss_bytes
from plasmavmc.hypervisor.qemu import qmp
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.types.vm import ResourceUsage, VirtualMachine

_NET = Path("/sys/class/net")


def _counter(tap: str, name: str) -> int:
    try:
        return int((_NET / tap / "statistics" / name).read_text())
    except (OSError, ValueError):
        return 0


async def block_bytes(paths: RuntimePaths) -> tuple[int, int]:
    """(read, written) bytes over every block device of the VM; (0, 0) when QMP does not answer."""
    try:
        stats = await qmp.execute(paths.qmp, "query-blockstats")
    except HypervisorError:
        return 0, 0
    read = sum(int(s.get("stats", {}).get("rd_bytes", 0)) for s in stats)
    written = sum(int(s.get("stats", {}).get("wr_bytes", 0)) for s in stats)
    return read, written


class UsageMeter:
    def __init__(self) -> None:
        self._cpu: dict[str, tuple[float, float]] = {}  # vm_id -> (monotonic, cpu seconds)
        self._last: dict[str, ResourceUsage] = {}
        self._footprint = footprint.FootprintMeter()

    def forget(self, vm_id: str) -> None:
        self._cpu.pop(vm_id, None)
        self._last.pop(vm_id, None)
        self._footprint.forget(vm_id)

    def last(self, vm_id: str) -> ResourceUsage:
        """The latest sample of the VM (zeros if none yet), for when QMP is busy."""
        return self._last.get(vm_id, ResourceUsage())

    def _cpu_percent(self, vm_id: str, pid: int) -> float:
        now, cpu = time.monotonic(), cpu_seconds(pid) or 0.0
        before = self._cpu.get(vm_id)
        self._cpu[vm_id] = (now, cpu)
        if before is None or now <= before[0]:
            return 0.0
        return round(max(100.0 * (cpu - before[1]) / (now - before[0]), 0.0), 1)

    async def sample(self, paths: RuntimePaths, vm: VirtualMachine | None, pid: int) -> ResourceUsage:
        read, written = await block_bytes(paths)
        taps = [common.tap_name(vm.id, nic.id) for nic in vm.spec.network] if vm is not None else []
        usage = ResourceUsage(
            cpu_percent=self._cpu_percent(paths.root.name, pid),
            memory_used_mib=rss_bytes(pid) // 2**20,
            disk_read_bytes=read, disk_write_bytes=written,
            network_rx_bytes=sum(_counter(t, "tx_bytes") for t in taps),
            network_tx_bytes=sum(_counter(t, "rx_bytes") for t in taps),
            **footprint.usage_fields(self._footprint.sample(
                paths.root.name, pid, vm.spec.memory.size_mib if vm is not None else 0)),
        )
        self._last[paths.root.name] = usage
        return usage
