"""Over-commit ratios per resource: `allocatable` = capacity x ratio, applied to what agents report."""

from __future__ import annotations

from pathlib import Path

import pytest

from plasmavmc.core.nodes.registry import NodeRegistry, Overcommit
from plasmavmc.scheduler.filters import ResourceFilter
from plasmavmc.scheduler.framework import Cycle, NodeView
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.vm import CpuSpec, MemorySpec, VirtualMachine, VmSpec

CASES = [
    (Overcommit(), NodeCapacity(8, 1000, 100), NodeCapacity(8, 1000, 100)),
    (Overcommit(cpu=4.0), NodeCapacity(8, 1000, 100), NodeCapacity(32, 1000, 100)),
    (Overcommit(cpu=1.5, memory=1.25, storage=0.5), NodeCapacity(3, 1000, 101), NodeCapacity(4, 1250, 50)),
]


@pytest.mark.parametrize(("ratios", "capacity", "allocatable"), CASES)
def test_ratio_per_resource_rounds_down(ratios: Overcommit, capacity: NodeCapacity, allocatable: NodeCapacity) -> None:
    assert ratios.apply(capacity) == allocatable


async def test_heartbeat_applies_the_ratios_and_the_filter_honours_them(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        registry = NodeRegistry(store, 15, Overcommit(cpu=2.0))
        reported = Node(id="n1", capacity=NodeCapacity(4, 8192, 100), allocatable=NodeCapacity(4, 8192, 100))
        registered = await registry.heartbeat(reported)
        assert registered.allocatable == NodeCapacity(8, 8192, 100)
        again = await registry.heartbeat(reported)  # a later heartbeat does not compound the ratio
        assert again.allocatable == NodeCapacity(8, 8192, 100)
        vm = VirtualMachine(
            id="v",
            name="v",
            org_id="o",
            project_id="p",
            spec=VmSpec(cpu=CpuSpec(vcpus=6), memory=MemorySpec(size_mib=1024)),
        )
        assert ResourceFilter().check(Cycle.of(vm), NodeView(again)) is None  # 6 vCPUs on a 4-core node at 2.0
    finally:
        await store.close()
