"""ResourceFilter: the VM's vCPUs, memory and disk fit in what the node has left.

Left = `allocatable` (capacity times the over-commit ratio, see core/nodes/registry.py) minus `allocated`
(the claims of the VMs placed there); the node view works it out once per node record.
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView


class ResourceFilter:
    name = "ResourceFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        need, free = cycle.need, view.free
        if need.vcpus <= free.vcpus and need.memory_mib <= free.memory_mib and need.storage_gib <= free.storage_gib:
            return None
        short = [
            f"{label} {want} > {have} free"
            for label, want, have in (
                ("vCPU", need.vcpus, free.vcpus),
                ("memory MiB", need.memory_mib, free.memory_mib),
                ("storage GiB", need.storage_gib, free.storage_gib),
            )
            if want > have
        ]
        return ", ".join(short)
