"""TaintFilter: a node's NoSchedule/NoExecute taints keep off every VM that does not tolerate them.

A toleration matches a taint when the keys are equal, its value is "" or equal, and its effect is ""
or equal. Taints with effect PreferNoSchedule never reject (they are a preference, not a rule).
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import Cycle, NodeView
from plasmavmc.types.node import Taint
from plasmavmc.types.vm import Toleration

HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    return (
        toleration.key == taint.key
        and toleration.value in ("", taint.value)
        and toleration.effect in ("", taint.effect)
    )


class TaintFilter:
    name = "TaintFilter"

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        vm = cycle.vm
        taints = view.node.taints
        if not taints:
            return None
        tolerations = vm.spec.placement.tolerations
        for taint in taints:
            if taint.effect in HARD_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
                return f"untolerated taint {taint.key}={taint.value}:{taint.effect}"
        return None
