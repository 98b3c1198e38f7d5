"""What agents tell the control plane: heartbeats (node + every VM's observed status) and exit reports.

A hypervisor process that exits without being asked moves its VM out of RUNNING (through the transition
table, `lifecycle.moved`, like every state change) to STOPPED, after a crash or a host reboot with
`last_error` naming the cause (`vms/restarts.py` decides whether it comes back). Heartbeats refresh
resource usage and catch anything a lost report missed (the agent says STOPPED while the record says
RUNNING). They also converge: a VM in ERROR whose process the agent reports RUNNING (an agent killed between the
hypervisor's start and the record, an agent outage during a stop that never happened) becomes RUNNING
through the transition table, its stale `last_error` cleared, so start, stop and delete work on it as
on any running VM; a RUNNING record with a stale `last_error` has it cleared the same way. Exits that
an operation requested are that operation's business and are ignored here. A heartbeat report identical
to the last one applied to an unchanged record is skipped (`report_memory.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plasmavmc.core.context import Core
from plasmavmc.core.vms import boot, restarts
from plasmavmc.core.vms.lifecycle import moved, running
from plasmavmc.core.vms.placement import read_assignment
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.records import Versioned, mutate, replace
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState, can_transition
from plasmavmc.types.vm import VirtualMachine, VmStatus

log = logging.getLogger(__name__)


def _after_exit(vm: VirtualMachine, kind: ExitKind, observed: VmStatus) -> VirtualMachine:
    if vm.state != VmState.RUNNING:
        return vm  # an operation in flight (stop, reboot, delete) owns this VM's state
    default = "the guest powered off" if kind == ExitKind.GUEST_POWEROFF else "hypervisor process exited"
    decided = restarts.after_exit(vm, kind, observed.last_error or default)  # restart policy
    if not can_transition(vm.state, decided.state):
        return vm
    log.warning("vm %s: %s -> %s (%s)", vm.id, vm.state.value, decided.state.value,
                decided.status.last_error or "guest powered off")
    return moved(vm, decided.state, "report an exit", status=decided.status)  # through the transition table


def _refreshed(vm: VirtualMachine, observed: VmStatus, observed_at: int, kind: ExitKind | None) -> VirtualMachine:
    if observed_at <= vm.updated_at + 1:
        return vm  # observed before (or as) the record last changed: stale for state purposes
    if vm.state == VmState.RUNNING and observed.actual_state == VmState.STOPPED:
        if kind in (None, ExitKind.REQUESTED):
            kind = ExitKind.CRASHED  # the agent does not know why (or says it was asked: not by us)
        gone = observed.last_error or "hypervisor process is gone"  # the agent's reason, when it knows
        return _after_exit(vm, kind, replace(observed, last_error=gone))
    if observed.actual_state != VmState.RUNNING:
        return vm
    if vm.state == VmState.ERROR or (vm.state == VmState.RUNNING and vm.status.last_error):
        log.warning("vm %s: its process runs on its node: RUNNING (was %s: %s)",
                    vm.id, vm.state.value, vm.status.last_error)
        converged = running(vm, observed, "converge")
        return replace(converged, status=replace(converged.status, resource_usage=observed.resource_usage))
    if vm.state == VmState.RUNNING:
        vm = boot.with_node_times(vm, observed.boot)
    if vm.state != VmState.RUNNING or vm.status.resource_usage == observed.resource_usage:
        return vm
    return replace(vm, status=replace(vm.status, resource_usage=observed.resource_usage))


async def _apply(
    core: Core, node_id: str, vm_id: str, change: Callable[[VirtualMachine], VirtualMachine]
) -> Versioned[VirtualMachine] | None:
    """Apply `change` to the VM's record if the VM is assigned to `node_id`; the record as it now is."""
    assignment = await read_assignment(core.store, vm_id)
    if assignment is None or assignment.node_id != node_id:
        log.info("report from node %s about VM %s that is not assigned to it: ignored", node_id, vm_id)
        return None
    key = keys.vm(assignment.org_id, assignment.project_id, vm_id)
    before: list[VirtualMachine] = []

    def observed(vm: VirtualMachine) -> VirtualMachine:
        before[:] = [vm]
        return change(vm)

    try:
        after = await mutate(core.store, VirtualMachine, key, observed)
    except PlasmaError as err:
        log.warning("report on VM %s not applied: %s", vm_id, err)
        return None
    if before:
        boot.observe_ready(before[0].status.boot, after.value.status.boot)
    return after


def settled(core: Core, node_id: str) -> frozenset[str]:
    """The VMs of `node_id` whose heartbeat reports can be skipped unread: their record is neither RUNNING
    nor ERROR, and `_refreshed` changes no other (a full heartbeat after a control-plane restart, when
    the report memory is empty, then costs the node's RUNNING and ERROR VMs, not a read of each VM). From
    the replica's watched state index, only while it holds every VM write of this replica; else empty."""
    index = core.nodes.vm_index
    return frozenset() if index is None else index.settled_on(node_id, core.store.fence(keys.VMS))


async def on_exit(core: Core, node_id: str, vm_id: str, kind: ExitKind, observed: VmStatus) -> None:
    if kind == ExitKind.REQUESTED:
        return
    await _apply(core, node_id, vm_id, lambda vm: _after_exit(vm, kind, observed))


async def on_status(core: Core, node_id: str, vm_id: str, observed: VmStatus) -> None:
    """A report outside heartbeats that is not an exit: the guest became ready (boot timeline)."""
    def merged(vm: VirtualMachine) -> VirtualMachine:
        return boot.with_node_times(vm, observed.boot) if vm.state == VmState.RUNNING else vm

    await _apply(core, node_id, vm_id, merged)


async def on_heartbeat_vm(
    core: Core, node_id: str, vm_id: str, observed: VmStatus, observed_at: int, report: bytes,
    kind: ExitKind | None = None,
) -> None:
    """Refresh the VM's record from a heartbeat; a report already applied to the unchanged record is
    skipped without a store read (`report_memory.py`). `report` identifies `observed` exactly (its
    deterministic wire form): equal reports, and only those, have equal `report` bytes."""
    memory = core.reports
    if memory.unchanged(vm_id, node_id, report):
        return
    epoch = memory.epoch()
    record = await _apply(core, node_id, vm_id, lambda vm: _refreshed(vm, observed, observed_at, kind))
    if record is not None and (record.value.state != VmState.RUNNING or observed_at > record.value.updated_at + 1):
        # judged against this record: the same report changes nothing until the record does. (A report
        # older than the record's last change is judged again later, unless the record is not RUNNING:
        # then `_refreshed` leaves it as it is whenever the report was made.)
        memory.remember(vm_id, node_id, report, record.revision, epoch)
