"""AffinityFilter: the node's labels include every `spec.placement.node_selector` pair."""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView


class AffinityFilter:
    name = "AffinityFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        vm = cycle.vm
        selector = vm.spec.placement.node_selector
        if not selector:
            return None
        labels = view.node.labels
        for key, want in selector.items():
            if labels.get(key) != want:
                have = labels.get(key)
                return f"label {key}={want} wanted, node has {'none' if have is None else repr(have)}"
        return None
