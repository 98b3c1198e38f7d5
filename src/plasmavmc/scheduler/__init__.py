"""The scheduler (spec §6): filter/score plugins (`filters/`, `scorers/`), the pipeline (`framework.py`)
and the node cache placement ranks from (`cache.py`). `build()` assembles it from `[scheduler]`."""

from __future__ import annotations

from plasmavmc.config.server import SchedulerSettings
from plasmavmc.scheduler.filters import default_filters
from plasmavmc.scheduler.framework import Scheduler
from plasmavmc.scheduler.scorers import BalancedResourceScorer, LeastAllocatedScorer, LocalityScorer


def build(settings: SchedulerSettings | None = None) -> Scheduler:
    s = settings or SchedulerSettings()
    weighted = (
        (LeastAllocatedScorer(), s.least_allocated_weight),
        (BalancedResourceScorer(), s.balanced_resource_weight),
        (LocalityScorer(), s.locality_weight),
    )
    return Scheduler(
        filters=default_filters(),
        scorers=[(scorer, weight) for scorer, weight in weighted if weight > 0],
        feasible_to_score=s.feasible_nodes_to_score,
        vm_overhead_mib=dict(s.vm_memory_overhead_mib),
    )
