"""AntiAffinityFilter: two VMs of one project's anti-affinity group never share a node.

The node view lists the groups that already have a VM on the node; the claim also writes a per-(group,
node) key that must not exist, so two concurrent placements cannot both win the same node.
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView, group_of


class AntiAffinityFilter:
    name = "AntiAffinityFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        vm = cycle.vm
        if not view.groups:
            return None
        group = group_of(vm)
        if group is not None and group in view.groups:
            return f"already runs a VM of anti-affinity group {vm.spec.placement.anti_affinity_group!r}"
        return None
