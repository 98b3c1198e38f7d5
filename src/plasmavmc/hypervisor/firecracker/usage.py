"""`ResourceUsage` of a running Firecracker VM from real counters.

* CPU: the Firecracker process's user+system time as a percentage of one host CPU since the previous
  sample of the same VM (the first sample reads 0).
* Memory: the process's resident set, its PSS and the part of both beyond guest RAM (`footprint.py`).
* Disk and network: Firecracker's metrics file. Its counters are written as one JSON object per flush
  and each holds the *increase since the previous flush*, so totals are sums over the lines of the
  current run (from the offset recorded at start). A `FlushMetrics` action first makes them current.
  The file is appended to by Firecracker only, once per flush (every 60 s, or when asked), so it grows
  by a few KiB a minute.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import footprint
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.process import cpu_seconds, rss_bytes
from plasmavmc.types.vm import ResourceUsage

_COUNTERS = (("block", "read_bytes"), ("block", "write_bytes"), ("net", "rx_bytes_count"),
             ("net", "tx_bytes_count"))


def metric_totals(path: Path, offset: int = 0) -> dict[tuple[str, str], int]:
    totals = dict.fromkeys(_COUNTERS, 0)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            lines = f.read().splitlines()
    except OSError:
        return totals
    for line in lines:
        try:
            flush: dict[str, Any] = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        for group, name in _COUNTERS:
            value = flush.get(group, {}).get(name, 0)
            totals[(group, name)] += value if isinstance(value, int) else 0
    return totals


class CpuMeter:
    """CPU % of a process between successive samples, per VM."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}  # vm_id -> (monotonic, cpu seconds)
        self.footprint = footprint.FootprintMeter()

    def forget(self, vm_id: str) -> None:
        self._last.pop(vm_id, None)
        self.footprint.forget(vm_id)

    def percent(self, vm_id: str, pid: int) -> float:
        sample = (time.monotonic(), cpu_seconds(pid) or 0.0)
        before, self._last[vm_id] = self._last.get(vm_id), sample
        if before is None or sample[0] <= before[0]:
            return 0.0
        return round(max(100.0 * (sample[1] - before[1]) / (sample[0] - before[0]), 0.0), 1)


async def sample(api: FirecrackerApi, metrics: Path, offset: int, cpu: CpuMeter, vm_id: str,
                 pid: int, guest_mib: int) -> ResourceUsage:
    with contextlib.suppress(HypervisorError):  # paused or busy: the counters are as of the last flush
        await api.action("FlushMetrics")
    totals = metric_totals(metrics, offset)
    return ResourceUsage(cpu_percent=cpu.percent(vm_id, pid), memory_used_mib=rss_bytes(pid) // 2**20,
                         disk_read_bytes=totals[("block", "read_bytes")],
                         disk_write_bytes=totals[("block", "write_bytes")],
                         network_rx_bytes=totals[("net", "rx_bytes_count")],
                         network_tx_bytes=totals[("net", "tx_bytes_count")],
                         **footprint.usage_fields(cpu.footprint.sample(vm_id, pid, guest_mib)))
