"""Shared arithmetic of the resource scorers: what share of a node is in use once the VM is on it."""

from __future__ import annotations

from plasmavmc.scheduler.framework import NodeView, request_of
from plasmavmc.types.vm import VirtualMachine


def used_after(vm: VirtualMachine, view: NodeView) -> tuple[float, float]:
    """(vCPU share, memory share) of `allocatable` in use after placing `vm`, each clamped to 0..1."""
    node, need = view.node, request_of(vm)

    def share(used: int, total: int) -> float:
        return 1.0 if total <= 0 else min(1.0, max(0.0, used / total))

    return (
        share(node.allocated.vcpus + need.vcpus, node.allocatable.vcpus),
        share(node.allocated.memory_mib + need.memory_mib, node.allocatable.memory_mib),
    )
