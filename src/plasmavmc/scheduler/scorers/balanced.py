"""BalancedResourceScorer: prefer the node whose vCPU and memory use stay closest to each other, so
neither resource is stranded (a node full of CPU with idle memory can take no more VMs)."""

from __future__ import annotations

from plasmavmc.scheduler.framework import MAX_SCORE, Cycle, NodeView
from plasmavmc.scheduler.scorers.fractions import used_after


class BalancedResourceScorer:
    name = "BalancedResourceScorer"

    def score(self, cycle: Cycle, view: NodeView) -> int:
        cpu, mem = used_after(cycle, view)
        return round(MAX_SCORE * (1.0 - abs(cpu - mem)))
