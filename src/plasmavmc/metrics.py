"""The Prometheus metrics of spec §12.2, defined once; the server exposes them on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VMS_TOTAL = Gauge("plasmavmc_vms_total", "Total VMs by state", ["state"])
OPERATIONS = Counter("plasmavmc_vm_operations_total", "VM operations by type and result", ["operation", "result"])
BOOT_SECONDS = Histogram(
    "plasmavmc_vm_boot_seconds",
    "VM boot time: start requested to hypervisor running",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
)
NODE_CAPACITY_VCPUS = Gauge("plasmavmc_node_capacity_vcpus", "Node vCPU capacity", ["node"])
NODE_ALLOCATED_VCPUS = Gauge("plasmavmc_node_allocated_vcpus", "Allocated vCPUs", ["node"])
SCHEDULER_LATENCY = Histogram("plasmavmc_scheduler_latency_seconds", "Scheduling latency")
HEARTBEAT_AGE = Gauge("plasmavmc_agent_heartbeat_age_seconds", "Time since heartbeat", ["node"])
CORRUPT_RECORDS = Counter(
    "plasmavmc_corrupt_records_total", "Stored records that failed to decode (skipped or moved aside)", ["kind"]
)
