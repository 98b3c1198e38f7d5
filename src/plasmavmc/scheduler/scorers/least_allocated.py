"""LeastAllocatedScorer: prefer the node with the most room left (spreads VMs), vCPU and memory alike."""

from __future__ import annotations

from plasmavmc.scheduler.framework import MAX_SCORE, Cycle, NodeView
from plasmavmc.scheduler.scorers.fractions import used_after


class LeastAllocatedScorer:
    name = "LeastAllocatedScorer"

    def score(self, cycle: Cycle, view: NodeView) -> int:
        cpu, mem = used_after(cycle, view)
        return round(MAX_SCORE * (1.0 - (cpu + mem) / 2))
