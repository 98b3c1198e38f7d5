"""Every built-in scheduler scorer, table-driven: (vm, node) -> 0..100."""

from __future__ import annotations

import pytest

from plasmavmc.scheduler.framework import Cycle, NodeView, Scorer
from plasmavmc.scheduler.scorers import BalancedResourceScorer, LeastAllocatedScorer, LocalityScorer
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.vm import CpuSpec, MemorySpec, PlacementSpec, VirtualMachine, VmSpec


def vm(vcpus: int = 1, mem: int = 1024, zone: str = "", rack: str = "") -> VirtualMachine:
    spec = VmSpec(
        cpu=CpuSpec(vcpus=vcpus), memory=MemorySpec(size_mib=mem), placement=PlacementSpec(zone=zone, rack=rack)
    )
    return VirtualMachine(id="v", name="v", org_id="o", project_id="p", spec=spec)


def node(used_vcpus: int = 0, used_mem: int = 0, labels: dict[str, str] | None = None) -> NodeView:
    total = NodeCapacity(10, 10240, 100)
    return NodeView(
        Node(
            id="n",
            allocatable=total,
            capacity=total,
            allocated=NodeCapacity(used_vcpus, used_mem, 0),
            labels=labels or {},
        )
    )


ZONED = {"zone": "a", "rack": "r1"}
CASES: list[tuple[str, Scorer, VirtualMachine, NodeView, int]] = [
    ("empty node, small vm", LeastAllocatedScorer(), vm(1, 1024), node(), 90),
    ("half used", LeastAllocatedScorer(), vm(1, 1024), node(4, 4096), 50),
    ("full after placing", LeastAllocatedScorer(), vm(2, 2048), node(8, 8192), 0),
    ("cpu-heavy vm on empty node", LeastAllocatedScorer(), vm(10, 0), node(), 50),
    ("balanced use", BalancedResourceScorer(), vm(1, 1024), node(4, 4096), 100),
    ("cpu full, memory empty", BalancedResourceScorer(), vm(10, 0), node(), 0),
    ("30 points apart", BalancedResourceScorer(), vm(1, 1024), node(3, 0), 70),
    ("no preference", LocalityScorer(), vm(), node(labels=ZONED), 0),
    ("zone and rack match", LocalityScorer(), vm(zone="a", rack="r1"), node(labels=ZONED), 100),
    ("zone only wanted", LocalityScorer(), vm(zone="a"), node(labels=ZONED), 100),
    ("zone matches, rack differs", LocalityScorer(), vm(zone="a", rack="r2"), node(labels=ZONED), 60),
    ("other zone", LocalityScorer(), vm(zone="b", rack="r1"), node(labels=ZONED), 0),
    ("rack only wanted and matches", LocalityScorer(), vm(rack="r1"), node(labels=ZONED), 60),
    ("unlabelled node", LocalityScorer(), vm(zone="a"), node(), 0),
]


@pytest.mark.parametrize(("case", "scorer", "the_vm", "view", "expected"), CASES, ids=[c[0] for c in CASES])
def test_scorer(case: str, scorer: Scorer, the_vm: VirtualMachine, view: NodeView, expected: int) -> None:
    assert scorer.score(Cycle.of(the_vm), view) == expected
