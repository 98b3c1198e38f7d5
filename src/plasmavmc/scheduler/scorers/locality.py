"""LocalityScorer: prefer nodes in the VM's preferred zone and rack (node labels `zone`, `rack`).

Same zone and rack: 100; same zone: 60; otherwise 0. A VM without a preference scores every node 0,
so this scorer then leaves the ranking to the others.
"""

from __future__ import annotations

from plasmavmc.scheduler.framework import MAX_SCORE, Cycle, NodeView

ZONE_LABEL = "zone"
RACK_LABEL = "rack"
ZONE_ONLY = 60


class LocalityScorer:
    name = "LocalityScorer"

    def score(self, cycle: Cycle, view: NodeView) -> int:
        vm = cycle.vm
        want = vm.spec.placement
        labels = view.node.labels
        if not want.zone or labels.get(ZONE_LABEL) != want.zone:
            if not want.zone and want.rack and labels.get(RACK_LABEL) == want.rack:
                return ZONE_ONLY
            return 0
        if want.rack and labels.get(RACK_LABEL) != want.rack:
            return ZONE_ONLY
        return MAX_SCORE
