"""The scheduler pipeline: ranking by weighted scores, the NO_SUITABLE_NODE explanation, `[scheduler]`."""

from __future__ import annotations

import pytest

from plasmavmc.config.server import SchedulerSettings
from plasmavmc.errors import NoSuitableNode
from plasmavmc.scheduler import build
from plasmavmc.scheduler.framework import Cycle, NodeView
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.vm import CpuSpec, DiskSpec, HypervisorType, MemorySpec, PlacementSpec, VirtualMachine, VmSpec

TOTAL = NodeCapacity(8, 8192, 100)


def vm(vcpus: int = 1, zone: str = "") -> VirtualMachine:
    spec = VmSpec(
        cpu=CpuSpec(vcpus=vcpus),
        memory=MemorySpec(size_mib=1024),
        disks=(DiskSpec(size_gib=1),),
        placement=PlacementSpec(zone=zone),
    )
    return VirtualMachine(id="v", name="v", org_id="o", project_id="p", spec=spec)


def view(node_id: str, used_vcpus: int = 0, state: NodeState = NodeState.READY, zone: str = "") -> NodeView:
    return NodeView(
        Node(
            id=node_id,
            state=state,
            capacity=TOTAL,
            allocatable=TOTAL,
            allocated=NodeCapacity(used_vcpus, used_vcpus * 1024, 0),
            hypervisors=(HypervisorType.KVM,),
            labels={"zone": zone} if zone else {},
        )
    )


def test_least_allocated_node_ranks_first() -> None:
    ranked = build().rank(Cycle.of(vm()), [view("busy", 6), view("idle", 0), view("half", 4)])
    assert [v.node.id for v in ranked] == ["idle", "half", "busy"]


def test_weights_decide_between_locality_and_load() -> None:
    views = [view("idle-b", 0, zone="b"), view("busy-a", 4, zone="a")]
    assert build().rank(Cycle.of(vm(zone="a")), views)[0].node.id == "busy-a"
    no_locality = build(SchedulerSettings(locality_weight=0))
    assert no_locality.rank(Cycle.of(vm(zone="a")), views)[0].node.id == "idle-b"
    load_heavy = build(SchedulerSettings(least_allocated_weight=5))
    assert load_heavy.rank(Cycle.of(vm(zone="a")), views)[0].node.id == "idle-b"


def test_zero_weight_turns_a_scorer_off() -> None:
    scheduler = build(SchedulerSettings(least_allocated_weight=0, balanced_resource_weight=0))
    assert [s.name for s, _ in scheduler.scorers] == ["LocalityScorer"]


def test_no_suitable_node_counts_every_filter_and_says_why() -> None:
    views = [view("full-1", 8), view("full-2", 8), view("cordoned", 0, NodeState.CORDONED)]
    with pytest.raises(NoSuitableNode) as err:
        build().rank(Cycle.of(vm()), views)
    message = err.value.message
    assert "3 nodes" in message
    assert "ResourceFilter rejected 2" in message and "full-1: vCPU 1 > 0 free" in message
    assert "ReadyFilter rejected 1 (cordoned: node is cordoned)" in message


def test_no_nodes_at_all() -> None:
    with pytest.raises(NoSuitableNode, match="no nodes are registered"):
        build().rank(Cycle.of(vm()), [])


def test_feasible_limit_scores_a_sample_and_rotates_over_the_fleet() -> None:
    scheduler = build(SchedulerSettings(feasible_nodes_to_score=2))
    views = [view(f"n{i}") for i in range(6)]
    first = {v.node.id for v in scheduler.rank(Cycle.of(vm()), views)}
    second = {v.node.id for v in scheduler.rank(Cycle.of(vm()), views)}
    assert len(first) == 2 and len(second) == 2
    assert first != second
