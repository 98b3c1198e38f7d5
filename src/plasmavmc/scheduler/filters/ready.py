"""ReadyFilter: only READY nodes take new VMs (not NotReady, cordoned, draining or in maintenance)."""

from __future__ import annotations

from plasmavmc.scheduler.framework import NodeView
from plasmavmc.types.vm import VirtualMachine


class ReadyFilter:
    name = "ReadyFilter"

    def check(self, vm: VirtualMachine, view: NodeView) -> str | None:
        return None if view.ready else f"node is {view.node.state.value}"
