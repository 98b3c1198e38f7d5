"""Shared arithmetic of the resource scorers: what share of a node is in use once the VM is on it.

The pipeline asks every scorer about one (vm, node) pair in a row, so the last answer is remembered:
the second resource scorer reuses the first one's arithmetic.
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import NodeView, request_of
from plasmavmc.types.vm import VirtualMachine

_last: list[tuple[VirtualMachine, NodeView, tuple[float, float]]] = []


def _share(used: int, total: int) -> float:
    if total <= 0:
        return 1.0
    fraction = used / total
    return 1.0 if fraction > 1.0 else 0.0 if fraction < 0.0 else fraction


def used_after(vm: VirtualMachine, view: NodeView) -> tuple[float, float]:
    """(vCPU share, memory share) of `allocatable` in use after placing `vm`, each clamped to 0..1."""
    if _last:
        last_vm, last_view, shares = _last[0]
        if last_vm is vm and last_view is view:
            return shares
    need = request_of(vm)
    (cpu_used, cpu_total), (mem_used, mem_total) = view.cpu, view.mem
    shares = (_share(cpu_used + need.vcpus, cpu_total), _share(mem_used + need.memory_mib, mem_total))
    _last[:] = [(vm, view, shares)]
    return shares
