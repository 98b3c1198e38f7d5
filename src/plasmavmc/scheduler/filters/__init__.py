"""Built-in scheduler filters (spec §6.2), one per module; `default_filters()` in pipeline order."""

from __future__ import annotations

from plasmavmc.scheduler.filters.affinity import AffinityFilter
from plasmavmc.scheduler.filters.anti_affinity import AntiAffinityFilter
from plasmavmc.scheduler.filters.hypervisor import HypervisorFilter
from plasmavmc.scheduler.filters.ready import ReadyFilter
from plasmavmc.scheduler.filters.resource import ResourceFilter
from plasmavmc.scheduler.filters.taint import TaintFilter
from plasmavmc.scheduler.framework import Filter

__all__ = [
    "AffinityFilter",
    "AntiAffinityFilter",
    "HypervisorFilter",
    "ReadyFilter",
    "ResourceFilter",
    "TaintFilter",
    "default_filters",
]


def default_filters() -> list[Filter]:
    """Cheap, common rejections first, so a full scan stays fast."""
    return [ReadyFilter(), HypervisorFilter(), ResourceFilter(), TaintFilter(), AffinityFilter(), AntiAffinityFilter()]
