"""HypervisorFilter: the node's agent runs the VM's hypervisor backend."""

from __future__ import annotations

from plasmavmc.scheduler.framework import NodeView
from plasmavmc.types.vm import VirtualMachine


class HypervisorFilter:
    name = "HypervisorFilter"

    def check(self, vm: VirtualMachine, view: NodeView) -> str | None:
        if vm.hypervisor in view.node.hypervisors:
            return None
        offered = ", ".join(h.value for h in view.node.hypervisors) or "none"
        return f"no {vm.hypervisor.value} hypervisor (has {offered})"
