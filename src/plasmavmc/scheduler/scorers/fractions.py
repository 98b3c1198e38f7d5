"""Shared arithmetic of the resource scorers: what share of a node is in use once the VM is on it.

The pipeline asks every scorer about one node in a row, so the placement's `Cycle` remembers the last
answer: the second resource scorer reuses the first one's arithmetic.
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView


def _share(used: int, total: int) -> float:
    if total <= 0:
        return 1.0
    fraction = used / total
    return 1.0 if fraction > 1.0 else 0.0 if fraction < 0.0 else fraction


def used_after(cycle: Cycle, view: NodeView) -> tuple[float, float]:
    """(vCPU share, memory share) of `allocatable` in use after placing the VM, each clamped to 0..1."""
    if cycle.last_view is view:
        return cycle.last_shares
    need = cycle.need
    (cpu_used, cpu_total), (mem_used, mem_total) = view.cpu, view.mem
    shares = (_share(cpu_used + need.vcpus, cpu_total), _share(mem_used + need.memory_mib, mem_total))
    cycle.last_view, cycle.last_shares = view, shares
    return shares
