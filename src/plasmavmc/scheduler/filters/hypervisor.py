"""HypervisorFilter: the node's agent runs the VM's hypervisor backend."""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView


class HypervisorFilter:
    name = "HypervisorFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        vm = cycle.vm
        if vm.hypervisor in view.node.hypervisors:
            return None
        offered = ", ".join(h.value for h in view.node.hypervisors) or "none"
        return f"no {vm.hypervisor.value} hypervisor (has {offered})"
