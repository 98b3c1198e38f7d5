"""Built-in scheduler scorers (spec §6.3), one per module, each 0-100; weights come from `[scheduler]`."""

from __future__ import annotations

from plasmavmc.scheduler.scorers.balanced import BalancedResourceScorer
from plasmavmc.scheduler.scorers.least_allocated import LeastAllocatedScorer
from plasmavmc.scheduler.scorers.locality import LocalityScorer

__all__ = ["BalancedResourceScorer", "LeastAllocatedScorer", "LocalityScorer"]
