"""Resize of a stopped VM on the control plane: its vCPUs, memory and disk sizes (UpdateVm).

The VM must be STOPPED (INVALID_STATE, i.e. FAILED_PRECONDITION, naming its state otherwise). The new
spec is checked as a created one is (validation, the backend's spec check) and a disk only grows
(INVALID_ARGUMENT naming the field). The change is ONE store commit: the VM record (compare-and-swap),
its node's `allocated` moved by the difference (compare-and-swap on the node; NO_SUITABLE_NODE naming
what is short when the node has no room) and the quota usage (`quotas.commit_charged`: QUOTA_EXCEEDED),
so a refused resize changes nothing. The resize event ("Resized") rides in the same commit
(`events.derive`). Then the node's agent applies it (the VM's stored spec; `qemu-img resize` for a
grown disk); should the agent refuse, the record, claim and usage are put back the same way.
"""

from __future__ import annotations

import logging
import time

from plasmavmc import validation
from plasmavmc.core import quotas
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import events as vm_events
from plasmavmc.errors import InvalidState, NoSuitableNode, PlasmaError
from plasmavmc.hypervisor.registry import check_spec_for
from plasmavmc.observe.metrics import OPERATIONS
from plasmavmc.scheduler.framework import request_of
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.cas import attempts, backoff
from plasmavmc.store.records import Versioned, read, replace
from plasmavmc.types import codec
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine, VmResize, VmSpec

log = logging.getLogger(__name__)


def _node_writes(vm: VirtualMachine, node: Versioned[Node], delta: NodeCapacity) -> list[Write]:
    """The node's claim moved by `delta`; NO_SUITABLE_NODE naming what is short when it has no room."""
    n = node.value
    free = n.allocatable - n.allocated
    short = [f"{label} +{want} > {have} free" for label, want, have in (
        ("vCPU", delta.vcpus, free.vcpus), ("memory MiB", delta.memory_mib, free.memory_mib),
        ("storage GiB", delta.storage_gib, free.storage_gib)) if want > 0 and want > have]
    if short:
        raise NoSuitableNode(f"VM {vm.name}'s node {n.id} has no room for the resize: {', '.join(short)} "
                             "(stop or shrink other VMs there, or raise the node's capacity)")
    claimed = replace(n, allocated=n.allocated + delta)
    return [Write(node.key, codec.dumps(claimed), node.revision)]


async def _commit(core: Core, ref: VmRef, target: VmSpec | None, *, undo_of: VmSpec | None = None) -> VirtualMachine:
    """Commit the VM's spec as `target` (or back to `undo_of`), with node claim and quota; retried on CAS."""
    for attempt in attempts(f"resize of VM {ref.vm}"):
        found = await core.find_vm(ref)
        old = found.value
        if old.state != VmState.STOPPED and undo_of is None:
            raise InvalidState(f"VM {old.name} is {old.state.value.upper()}: stop it first (only a STOPPED VM "
                               "is resized)", field="vm")
        new_spec = undo_of if undo_of is not None else target
        assert new_spec is not None
        new = replace(old, spec=new_spec, updated_at=int(time.time()))
        delta = request_of(new) - request_of(old)
        writes = [Write(found.key, codec.dumps(new), found.revision), *vm_events.derive_writes(old, new)]
        node = await read(core.store, Node, keys.node(old.node_id)) if old.node_id else None
        if node is not None:
            writes += _node_writes(old, node, delta) if undo_of is None else [
                Write(node.key, codec.dumps(replace(node.value, allocated=node.value.allocated + delta)),
                      node.revision)]
        usage = quotas.usage_of(new) + -quotas.usage_of(old)
        try:
            await quotas.commit_charged(core.store, old.org_id, old.project_id, usage, writes)
        except PlasmaError as err:
            if err.retryable and not isinstance(err, NoSuitableNode):
                await backoff(attempt)
                continue
            raise
        if node is not None:
            await core.nodes.cache.refresh(node.value.id)
        return new
    raise AssertionError("unreachable: attempts() raises when exhausted")


async def resize(core: Core, ref: VmRef, change: VmResize) -> VirtualMachine:
    """Apply `change` to a STOPPED VM (see the module docstring); the VM as recorded."""
    validation.vm_resize(change)
    found = await core.find_vm(ref)
    vm = found.value
    if vm.state != VmState.STOPPED:
        raise InvalidState(f"VM {vm.name} is {vm.state.value.upper()}: stop it first (only a STOPPED VM "
                           "is resized)", field="vm")
    target = validation.resized_spec(vm.spec, change)
    validation.vm_spec(target)
    check_spec_for(vm.hypervisor, target)
    if target == vm.spec:
        return vm
    try:
        updated = await _commit(core, ref, target)
    except PlasmaError:
        OPERATIONS.labels("resize", "error").inc()
        raise
    try:
        agent = await core.agent_for(updated)
        await agent.resize_vm(updated.id, change)
    except PlasmaError as err:
        log.warning("vm %s: the node refused the resize (%s); putting the record back", vm.id, err)
        try:
            await _commit(core, ref, None, undo_of=vm.spec)
        except PlasmaError as undo_err:
            log.error("vm %s: putting the resize back failed too: %s", vm.id, undo_err)
        OPERATIONS.labels("resize", "error").inc()
        raise
    OPERATIONS.labels("resize", "ok").inc()
    return updated
