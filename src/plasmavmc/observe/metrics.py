"""The Prometheus metrics, defined once: the seven of spec §12.2 and the rest (issue 17).

Gauges that describe the cluster (VMs by state, node capacity and allocation, node state, heartbeat
age, images) are set from the store when a replica is scraped (`core/gauges.py`), so every replica,
follower or leader, reports the same truth. Counters and histograms (operations, boot time, scheduling,
RPCs) count what this process did: sum them over the replicas (`sum without(instance)`). The agent's
own metrics (per-VM usage, image cache) are in `agent/metrics.py`, on the agent's HTTP port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VMS_TOTAL = Gauge("plasmavmc_vms_total", "Total VMs by state", ["state"])
OPERATIONS = Counter("plasmavmc_vm_operations_total", "VM operations by type and result", ["operation", "result"])
BOOT_SECONDS = Histogram(
    "plasmavmc_vm_boot_seconds",
    "VM boot time: start requested to the guest's readiness line on its console",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60),
)
NODE_CAPACITY_VCPUS = Gauge("plasmavmc_node_capacity_vcpus", "Node vCPU capacity", ["node"])
NODE_ALLOCATED_VCPUS = Gauge("plasmavmc_node_allocated_vcpus", "Allocated vCPUs", ["node"])
SCHEDULER_LATENCY = Histogram("plasmavmc_scheduler_latency_seconds", "Scheduling latency")
HEARTBEAT_AGE = Gauge("plasmavmc_agent_heartbeat_age_seconds", "Time since heartbeat", ["node"])

# -- beyond §12.2 (issue 17): per-RPC, replica, node capacity, images -----------------------------------
WATCHED_UNDERIVED = Gauge(
    "plasmavmc_watched_underived",
    "Listed entries of a watched copy its background pass has not derived yet (rendered, for the VM copy)",
    ["prefix"],
)
RPC_HANDLED = Counter(
    "plasmavmc_grpc_server_handled_total", "gRPC calls completed, by service, method and status code",
    ["service", "method", "code"],
)
RPC_SECONDS = Histogram(
    "plasmavmc_grpc_server_handling_seconds", "gRPC call duration (streams: until they end)",
    ["service", "method"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

NODE_CAPACITY_MEMORY = Gauge("plasmavmc_node_capacity_memory_bytes", "Node memory capacity", ["node"])
NODE_ALLOCATED_MEMORY = Gauge("plasmavmc_node_allocated_memory_bytes", "Memory allocated to VMs", ["node"])
NODE_CAPACITY_STORAGE = Gauge("plasmavmc_node_capacity_storage_bytes", "Node VM storage capacity", ["node"])
NODE_ALLOCATED_STORAGE = Gauge("plasmavmc_node_allocated_storage_bytes", "Storage allocated to VMs", ["node"])
NODE_STATE = Gauge("plasmavmc_node_state", "1 for the node's current state, 0 for the others", ["node", "state"])
LEADER = Gauge("plasmavmc_leader", "1 when this replica is the leader (runs the control loops)")
BUILD_INFO = Gauge("plasmavmc_build_info", "Always 1; the labels say what runs", ["version", "component"])
IMAGE_CACHE_FETCHES = Counter("plasmavmc_agent_image_cache_fetches_total",
                              "Image fetches on a node: hit (cached) or miss (downloaded)", ["result"])
IMAGES = Gauge("plasmavmc_images", "Images by status", ["status"])
IMAGE_BYTES = Gauge("plasmavmc_image_store_bytes", "Bytes of all images in the image store")
CORRUPT_RECORDS = Counter(
    "plasmavmc_corrupt_records_total", "Stored records that failed to decode (skipped or moved aside)", ["kind"]
)
VM_READS = Counter(
    "plasmavmc_vm_reads_total",
    "GetVm answers, unfiltered ListVms pages and filtered pages' reads by source: the watched copy (cache) or "
    "the store (store)", ["source"]
)
