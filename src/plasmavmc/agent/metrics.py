"""The agent's own metrics: per-VM usage (CPU, memory, disk and network counters), its VMs by state,
its image cache, and whether its heartbeats reach the control plane.

Usage comes from the statuses the heartbeat loop gathers anyway (`note`), so a scrape costs no
hypervisor query; a VM no longer on the node leaves the series at once. The collector builds the
families at scrape time from that snapshot (counters are the hypervisor's own running totals).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VmStatus

MIB = 1024**2


class AgentMetrics(Collector):
    def __init__(self, node_id: str, cache: ImageCache) -> None:
        self.node_id, self._cache = node_id, cache
        self._statuses: dict[str, VmStatus] = {}
        self.last_heartbeat_ok = 0.0

    def note(self, statuses: dict[str, VmStatus], delivered: bool) -> None:
        """One heartbeat's view of the node's VMs, and whether the control plane took it."""
        self._statuses = dict(statuses)
        if delivered:
            self.last_heartbeat_ok = time.time()

    def collect(self) -> Iterator[Metric]:
        yield from self._vm_families()
        states = Counter(s.actual_state for s in self._statuses.values())
        vms = GaugeMetricFamily("plasmavmc_agent_vms", "VMs on this node by observed state", labels=["state"])
        for state in VmState:
            vms.add_metric([state.value], states[state])
        yield vms
        entries = self._cache.entries()
        yield GaugeMetricFamily("plasmavmc_agent_image_cache_bytes", "Bytes in the node's image cache",
                                value=sum(size for _, size, _ in entries))
        yield GaugeMetricFamily("plasmavmc_agent_image_cache_images", "Images in the node's image cache",
                                value=len(entries))
        age = time.time() - self.last_heartbeat_ok if self.last_heartbeat_ok else float("inf")
        yield GaugeMetricFamily("plasmavmc_agent_heartbeat_success_age_seconds",
                                "Seconds since the control plane last took a heartbeat", value=age)

    def _vm_families(self) -> Iterator[Metric]:
        labels = ["vm_id"]
        cpu = GaugeMetricFamily("plasmavmc_vm_cpu_percent", "VM CPU use (100 = one host CPU)", labels=labels)
        mem = GaugeMetricFamily("plasmavmc_vm_memory_used_bytes", "VM memory in use", labels=labels)
        counters = {
            field: CounterMetricFamily(f"plasmavmc_vm_{name}", what, labels=labels)
            for field, name, what in (
                ("disk_read_bytes", "disk_read_bytes", "Bytes read from the VM's disks"),
                ("disk_write_bytes", "disk_written_bytes", "Bytes written to the VM's disks"),
                ("network_rx_bytes", "network_receive_bytes", "Bytes the VM's NICs received"),
                ("network_tx_bytes", "network_transmit_bytes", "Bytes the VM's NICs sent"),
            )
        }
        for vm_id, status in sorted(self._statuses.items()):
            usage = status.resource_usage
            cpu.add_metric([vm_id], usage.cpu_percent)
            mem.add_metric([vm_id], usage.memory_used_mib * MIB)
            for field, family in counters.items():
                family.add_metric([vm_id], getattr(usage, field))
        yield cpu
        yield mem
        yield from counters.values()
