"""The scheduler pipeline (spec §6): filters, then weighted scorers, over a view of the nodes.

Plugins are pure functions of (cycle, node): a `Filter` returns None to pass or a reason to reject, a
`Scorer` an int 0-100. The `Cycle` is built once per placement (`Cycle.of(vm)`): it carries the VM and
what the plugins derive from it, so no plugin keeps state of its own. `Scheduler.rank` runs every filter
on each node (in order; the first rejection counts) and keeps the reasons, so `NO_SUITABLE_NODE` says how
many nodes each filter rejected and why.

Like Kubernetes' `percentageOfNodesToScore`, ranking stops filtering once `feasible_to_score` nodes
passed, starting at a rotating offset so successive VMs spread over the whole fleet; that keeps a
placement at a few hundred plugin calls at 10,000 nodes. The ranking is advice: the claim
(`core/vms/placement.py`) re-checks the node under compare-and-swap and moves on to the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from plasmavmc.errors import NoSuitableNode
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.vm import VirtualMachine

MAX_SCORE = 100
REASONS_SHOWN = 3


def request_of(vm: VirtualMachine, overhead_mib: Mapping[str, int] | None = None) -> NodeCapacity:
    """What a VM claims on its node: its guest memory plus its hypervisor's per-VM host overhead
    (`[scheduler] vm_memory_overhead_mib`, keyed by hypervisor), so memory is never over-committed by
    what the VMM itself costs."""
    extra = (overhead_mib or {}).get(vm.hypervisor.value, 0)
    return NodeCapacity(
        vcpus=vm.spec.cpu.vcpus,
        memory_mib=vm.spec.memory.size_mib + extra,
        storage_gib=sum(d.size_gib for d in vm.spec.disks),
    )


@dataclass(eq=False)
class Cycle:
    """One placement's state, built once per placement and handed to every plugin call of it.

    `need` is worked out once instead of per node; `last_view`/`last_shares` let the resource scorers
    share their arithmetic for the node being scored (`scorers/fractions.py`). It lives as long as the
    placement does: nothing outlives it, nothing is keyed on the identity of another cycle's objects.
    """

    vm: VirtualMachine
    need: NodeCapacity
    last_view: NodeView | None = None
    last_shares: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def of(cls, vm: VirtualMachine, overhead_mib: Mapping[str, int] | None = None) -> Cycle:
        return cls(vm, request_of(vm, overhead_mib))


def group_of(vm: VirtualMachine) -> str | None:
    """The VM's anti-affinity group, scoped to its project ("org/project/group"), or None."""
    group = vm.spec.placement.anti_affinity_group
    return f"{vm.org_id}/{vm.project_id}/{group}" if group else None


@dataclass(frozen=True)
class NodeView:
    """A node as the scheduler sees it: the record plus the anti-affinity groups that have a VM on it.

    The figures every filter and scorer needs (what is free, what is in use of what total) are worked
    out once, when the view is built (the node cache builds one per changed record), not per VM.
    """

    node: Node
    groups: frozenset[str] = frozenset()
    ready: bool = field(init=False, repr=False, compare=False)
    free: NodeCapacity = field(init=False, repr=False, compare=False)
    cpu: tuple[int, int] = field(init=False, repr=False, compare=False)  # (allocated, allocatable) vCPUs
    mem: tuple[int, int] = field(init=False, repr=False, compare=False)  # the same in MiB

    def __post_init__(self) -> None:
        node, put = self.node, object.__setattr__
        put(self, "ready", node.state == NodeState.READY)
        put(self, "free", node.allocatable - node.allocated)
        put(self, "cpu", (node.allocated.vcpus, node.allocatable.vcpus))
        put(self, "mem", (node.allocated.memory_mib, node.allocatable.memory_mib))


class Filter(Protocol):
    name: str

    def check(self, cycle: Cycle, view: NodeView) -> str | None:
        """None when `view` can take `cycle.vm`, else why not (without the node id: the pipeline adds it)."""


class Scorer(Protocol):
    name: str

    def score(self, cycle: Cycle, view: NodeView) -> int:
        """0 (worst) to 100 (best) for putting `cycle.vm` on a node that passed every filter."""


@dataclass
class Rejections:
    """Per filter: how many nodes it rejected and the first few reasons."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, filter_name: str, node_id: str, reason: str) -> None:
        self.counts[filter_name] += 1
        shown = self.samples.setdefault(filter_name, [])
        if len(shown) < REASONS_SHOWN:
            shown.append(f"{node_id}: {reason}")

    def explain(self, total: int, none_left: str = "no nodes are registered") -> str:
        if total == 0:
            return f"no node can run this VM: {none_left}"
        parts = [
            f"{name} rejected {count} ({'; '.join(self.samples[name])}{'; ...' if count > REASONS_SHOWN else ''})"
            for name, count in self.counts.most_common()
        ]
        hints = [h for h in (hint(name, self.samples[name]) for name, _ in self.counts.most_common()) if h]
        tail = f". To change this: {'; '.join(hints)}" if hints else ""
        return f"no node can run this VM: {total} nodes, " + ", ".join(parts) + tail


#: per filter, what would change its verdict: (words in a rejection reason, the config key or flag)
HINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "ResourceFilter": (
        ("vCPU", "raise [scheduler] cpu_overcommit_ratio in the server config, or ask for fewer --vcpus"),
        ("memory", "raise [scheduler] memory_overcommit_ratio, or ask for less --memory-mib"),
        ("storage", "raise [scheduler] storage_overcommit_ratio, or ask for a smaller --disk-gib"),
    ),
    "ReadyFilter": (("", "uncordon a node (plasmavmc node uncordon N) or start its agent"),),
    "HypervisorFilter": (("", "enable the hypervisor on a node ([hypervisors] enabled in the agent config) "
                              "or pick another with --hypervisor"),),
    "TaintFilter": (("", "add a matching spec.placement.tolerations entry, or remove the node's taint"),),
    "AffinityFilter": (("", "relax spec.placement.node_selector, or label a node to match"),),
    "AntiAffinityFilter": (("", "use another spec.placement.anti_affinity_group, or add nodes"),),
}


def hint(filter_name: str, reasons: Sequence[str]) -> str:
    """What to change so that `filter_name` passes, from the words of its rejections."""
    text = " ".join(reasons)
    return "; ".join(h for words, h in HINTS.get(filter_name, ()) if words in text)


@dataclass
class Scheduler:
    filters: Sequence[Filter]
    scorers: Sequence[tuple[Scorer, int]]  # (scorer, weight)
    feasible_to_score: int = 100  # 0: score every feasible node
    vm_overhead_mib: Mapping[str, int] = field(default_factory=dict)  # hypervisor -> per-VM MiB reserved
    _offset: int = 0

    def cycle(self, vm: VirtualMachine) -> Cycle:
        return Cycle.of(vm, self.vm_overhead_mib)

    def request(self, vm: VirtualMachine) -> NodeCapacity:
        """What `vm` claims on its node (guest resources plus the per-VM overhead)."""
        return request_of(vm, self.vm_overhead_mib)

    def reject_reason(self, cycle: Cycle, view: NodeView) -> str | None:
        """The first filter's rejection as "Filter: reason", or None when every filter passes."""
        for f in self.filters:
            reason = f.check(cycle, view)
            if reason is not None:
                return f"{f.name}: {reason}"
        return None

    def score(self, cycle: Cycle, view: NodeView) -> int:
        total = 0
        for s, weight in self.scorers:
            total += weight * s.score(cycle, view)
        return total

    def rank(self, cycle: Cycle, views: Sequence[NodeView],
             none_left: str = "no nodes are registered") -> list[NodeView]:
        """Feasible nodes, best first; raises NoSuitableNode with every filter's rejections.

        `none_left` says why there is no node at all (a drain passes "no node other than N is registered").
        """
        total = len(views)
        start = self._offset % total if total else 0
        self._offset += 1
        feasible: list[NodeView] = []
        rejections = Rejections()
        checks = [(f.name, f.check) for f in self.filters]
        enough = self.feasible_to_score or total + 1
        for i in range(total):
            view = views[(start + i) % total]
            for name, check in checks:
                reason = check(cycle, view)
                if reason is not None:
                    rejections.add(name, view.node.id, reason)
                    break
            else:
                feasible.append(view)
                if len(feasible) >= enough:
                    break
        if not feasible:
            raise NoSuitableNode(rejections.explain(total, none_left))
        score = self.score
        scored = sorted([(-score(cycle, v), v.node.id, v) for v in feasible], key=_order)
        return [v for _, _, v in scored]


def _order(entry: tuple[int, str, NodeView]) -> tuple[int, str]:
    """Best score first, ties by node id (the negated score sorts ascending)."""
    return entry[0], entry[1]
