"""What this node is: capacity measured from the host (vCPUs, memory, disk), hypervisors, address."""

from __future__ import annotations

import os
import time
from pathlib import Path

from plasmavmc.config.agent import AgentSettings
from plasmavmc.hypervisor.registry import HypervisorRegistry
from plasmavmc.types.node import Node, NodeCapacity, NodeState

AGENT_VERSION = "0.1.0"
#: when this agent process started: the control plane re-sends overlay forwarding when it changes
STARTED_AT = int(time.time())


def host_memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise OSError("MemTotal missing from /proc/meminfo")


def host_storage_gib(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_blocks * st.f_frsize // 2**30


def describe_node(settings: AgentSettings, registry: HypervisorRegistry) -> Node:
    capacity = NodeCapacity(
        vcpus=os.cpu_count() or 1,
        memory_mib=host_memory_mib(),
        storage_gib=host_storage_gib(Path(settings.storage.runtime_dir)),
    )
    accelerators = sorted({b.capabilities().accelerator for b in registry.all() if b.capabilities().accelerator})
    return Node(
        id=settings.agent.node_id,
        name=settings.agent.node_id,
        state=NodeState.READY,
        capacity=capacity,
        allocatable=capacity,
        hypervisors=tuple(registry.available()),
        labels=dict(settings.agent.labels),
        agent_version=AGENT_VERSION,
        last_heartbeat=int(time.time()),
        agent_address=settings.agent.advertise_addr,
        accelerator=",".join(accelerators),
        underlay_address=settings.network.underlay_address,
        agent_started_at=STARTED_AT,
    )
