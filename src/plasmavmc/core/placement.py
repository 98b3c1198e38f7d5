"""Placement, first cut: a ready node that runs the VM's hypervisor and has room, claimed atomically.

The claim (node `allocated` += the VM's request), the VM's `node_id` and the assignment record
(`plasmavmc/scheduler/assignments/{vm_id}`, spec §8.1) are one store commit with compare-and-swap on
both records, so a node is never over-committed whatever the concurrency: a lost race re-reads and
tries again. The full filter/score scheduler (spec §6) replaces `choose()` and keeps this commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from plasmavmc.core.records import Versioned, replace
from plasmavmc.errors import NoSuitableNode
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.types import codec
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.vm import VirtualMachine


def request_of(vm: VirtualMachine) -> NodeCapacity:
    return NodeCapacity(
        vcpus=vm.spec.cpu.vcpus,
        memory_mib=vm.spec.memory.size_mib,
        storage_gib=sum(d.size_gib for d in vm.spec.disks),
    )


@dataclass(frozen=True)
class Assignment:
    vm_id: str
    org_id: str
    project_id: str
    node_id: str

    def encode(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @staticmethod
    def decode(raw: bytes) -> Assignment:
        return Assignment(**json.loads(raw))


def _reject_reason(vm: VirtualMachine, node: Node, need: NodeCapacity) -> str | None:
    if node.state != NodeState.READY:
        return f"{node.id}: state {node.state.value}"
    if vm.hypervisor not in node.hypervisors:
        return f"{node.id}: no {vm.hypervisor.value} hypervisor"
    free = node.allocatable - node.allocated
    if not free.fits(need):
        return f"{node.id}: not enough room (free {free.vcpus} vCPU / {free.memory_mib} MiB / {free.storage_gib} GiB)"
    return None


def choose(vm: VirtualMachine, nodes: list[Versioned[Node]]) -> Versioned[Node]:
    need = request_of(vm)
    reasons: list[str] = []
    fitting: list[Versioned[Node]] = []
    for node in nodes:
        reason = _reject_reason(vm, node.value, need)
        if reason is None:
            fitting.append(node)
        else:
            reasons.append(reason)
    if not fitting:
        detail = "; ".join(reasons) if reasons else "no nodes registered"
        raise NoSuitableNode(f"no node can run this VM: {detail}")
    return max(fitting, key=lambda n: (n.value.allocatable - n.value.allocated).memory_mib)


def claim_writes(vm: Versioned[VirtualMachine], node: Versioned[Node], placed: VirtualMachine) -> list[Write]:
    claimed = codec.dumps(_with_allocated(node.value, node.value.allocated + request_of(vm.value)))
    assignment = Assignment(vm.value.id, vm.value.org_id, vm.value.project_id, node.value.id)
    return [
        Write(vm.key, codec.dumps(placed), vm.revision),
        Write(node.key, claimed, node.revision),
        Write(keys.assignment(vm.value.id), assignment.encode(), 0),
    ]


def release_writes(vm: VirtualMachine, node: Versioned[Node] | None) -> list[Write]:
    """The writes that give a VM's claim back (the caller adds the VM record's own write)."""
    writes = [Write(keys.assignment(vm.id), None)]
    if node is not None:
        left = node.value.allocated - request_of(vm)
        left = NodeCapacity(max(left.vcpus, 0), max(left.memory_mib, 0), max(left.storage_gib, 0))
        writes.append(Write(node.key, codec.dumps(_with_allocated(node.value, left)), node.revision))
    return writes


def _with_allocated(node: Node, allocated: NodeCapacity) -> Node:
    return replace(node, allocated=allocated)


async def read_assignment(store: Store, vm_id: str) -> Assignment | None:
    kv = await store.get(keys.assignment(vm_id))
    return None if kv is None else Assignment.decode(kv.value)
