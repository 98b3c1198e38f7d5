"""Every built-in scheduler filter, table-driven: (vm, node) -> pass or the reason it rejects."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plasmavmc.scheduler.filters import (
    AffinityFilter,
    AntiAffinityFilter,
    HypervisorFilter,
    ReadyFilter,
    ResourceFilter,
    TaintFilter,
)
from plasmavmc.scheduler.framework import Cycle, Filter, NodeView
from plasmavmc.types.node import Node, NodeCapacity, NodeState, Taint
from plasmavmc.types.vm import (
    CpuSpec,
    DiskSpec,
    HypervisorType,
    MemorySpec,
    PlacementSpec,
    Toleration,
    VirtualMachine,
    VmSpec,
)


def vm(
    vcpus: int = 2, mem: int = 1024, disk: int = 10, hv: HypervisorType = HypervisorType.KVM, **placement: object
) -> VirtualMachine:
    spec = VmSpec(
        cpu=CpuSpec(vcpus=vcpus),
        memory=MemorySpec(size_mib=mem),
        disks=(DiskSpec(size_gib=disk),),
        placement=PlacementSpec(**placement),  # type: ignore[arg-type]
    )
    return VirtualMachine(id="v", name="v", org_id="o", project_id="p", spec=spec, hypervisor=hv)


def node(
    state: NodeState = NodeState.READY,
    free: tuple[int, int, int] = (4, 4096, 100),
    hv: tuple[HypervisorType, ...] = (HypervisorType.KVM,),
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
) -> Node:
    total = NodeCapacity(16, 65536, 1000)
    allocated = NodeCapacity(16 - free[0], 65536 - free[1], 1000 - free[2])
    return Node(
        id="n1",
        state=state,
        capacity=total,
        allocatable=total,
        allocated=allocated,
        hypervisors=hv,
        labels=labels or {},
        taints=taints,
    )


GPU = Taint("gpu", "true", "NoSchedule")

CASES: list[tuple[str, Filter, VirtualMachine, NodeView, str | None]] = [
    ("ready passes", ReadyFilter(), vm(), NodeView(node()), None),
    ("not ready", ReadyFilter(), vm(), NodeView(node(NodeState.NOT_READY)), "node is not_ready"),
    ("cordoned", ReadyFilter(), vm(), NodeView(node(NodeState.CORDONED)), "node is cordoned"),
    ("draining", ReadyFilter(), vm(), NodeView(node(NodeState.DRAINING)), "node is draining"),
    ("hypervisor present", HypervisorFilter(), vm(), NodeView(node()), None),
    (
        "hypervisor missing",
        HypervisorFilter(),
        vm(hv=HypervisorType.FIRECRACKER),
        NodeView(node()),
        "no firecracker hypervisor (has kvm)",
    ),
    ("fits exactly", ResourceFilter(), vm(4, 4096, 100), NodeView(node()), None),
    ("too many vcpus", ResourceFilter(), vm(5), NodeView(node()), "vCPU 5 > 4 free"),
    (
        "memory and disk short",
        ResourceFilter(),
        vm(1, 5000, 101),
        NodeView(node()),
        "memory MiB 5000 > 4096 free, storage GiB 101 > 100 free",
    ),
    ("no taints", TaintFilter(), vm(), NodeView(node()), None),
    ("untolerated taint", TaintFilter(), vm(), NodeView(node(taints=(GPU,))), "untolerated taint gpu=true:NoSchedule"),
    (
        "exact toleration",
        TaintFilter(),
        vm(tolerations=(Toleration("gpu", "true", "NoSchedule"),)),
        NodeView(node(taints=(GPU,))),
        None,
    ),
    ("wildcard toleration", TaintFilter(), vm(tolerations=(Toleration("gpu"),)), NodeView(node(taints=(GPU,))), None),
    (
        "wrong value",
        TaintFilter(),
        vm(tolerations=(Toleration("gpu", "false"),)),
        NodeView(node(taints=(GPU,))),
        "untolerated taint gpu=true:NoSchedule",
    ),
    (
        "soft taint never rejects",
        TaintFilter(),
        vm(),
        NodeView(node(taints=(Taint("old", "", "PreferNoSchedule"),))),
        None,
    ),
    ("no selector", AffinityFilter(), vm(), NodeView(node()), None),
    (
        "selector matches",
        AffinityFilter(),
        vm(node_selector={"pool": "a"}),
        NodeView(node(labels={"pool": "a", "x": "y"})),
        None,
    ),
    (
        "selector value differs",
        AffinityFilter(),
        vm(node_selector={"pool": "a"}),
        NodeView(node(labels={"pool": "b"})),
        "label pool=a wanted, node has 'b'",
    ),
    (
        "selector label absent",
        AffinityFilter(),
        vm(node_selector={"pool": "a"}),
        NodeView(node()),
        "label pool=a wanted, node has none",
    ),
    ("no group", AntiAffinityFilter(), vm(), NodeView(node(), frozenset({"o/p/db"})), None),
    (
        "group elsewhere",
        AntiAffinityFilter(),
        vm(anti_affinity_group="db"),
        NodeView(node(), frozenset({"o/p/web"})),
        None,
    ),
    (
        "group here",
        AntiAffinityFilter(),
        vm(anti_affinity_group="db"),
        NodeView(node(), frozenset({"o/p/db"})),
        "already runs a VM of anti-affinity group 'db'",
    ),
    (
        "same group name, other project",
        AntiAffinityFilter(),
        replace(vm(anti_affinity_group="db"), project_id="q"),
        NodeView(node(), frozenset({"o/p/db"})),
        None,
    ),
]


@pytest.mark.parametrize(("case", "flt", "the_vm", "view", "expected"), CASES, ids=[c[0] for c in CASES])
def test_filter(case: str, flt: Filter, the_vm: VirtualMachine, view: NodeView, expected: str | None) -> None:
    assert flt.check(Cycle.of(the_vm), view) == expected
