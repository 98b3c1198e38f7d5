"""ReadyFilter: only READY nodes take new VMs (not NotReady, cordoned, draining or in maintenance)."""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView


class ReadyFilter:
    name = "ReadyFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        return None if view.ready else f"node is {view.node.state.value}"
