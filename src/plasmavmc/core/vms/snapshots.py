"""VM snapshots on the control plane: take, restore, list, delete — through the VM's node agent.

Snapshots live with the VM's disks on its node (qcow2 internal snapshots for QEMU) and go with the VM,
so the node's agent is their source of truth and nothing is duplicated in the store. A snapshot of a
RUNNING VM holds memory too and restoring it continues the guest from that instant; a STOPPED VM's
snapshot holds disks only. Restore is allowed on a RUNNING or STOPPED VM; the VM keeps its state.
"""

from __future__ import annotations

from plasmavmc import validation
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import events as vm_events
from plasmavmc.errors import InvalidState, PlasmaError
from plasmavmc.observe.metrics import OPERATIONS
from plasmavmc.types.events import VmEventType
from plasmavmc.types.runtime import SnapshotInfo
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

ALLOWED = (VmState.RUNNING, VmState.STOPPED)


async def _vm(core: Core, ref: VmRef, operation: str) -> VirtualMachine:
    vm = (await core.find_vm(ref)).value
    if vm.state not in ALLOWED:
        raise InvalidState(f"cannot {operation} a VM in state {vm.state.value.upper()}: it must be "
                           "RUNNING or STOPPED")
    return vm


async def take(core: Core, ref: VmRef, snapshot_id: str) -> SnapshotInfo:
    validation.device_id(snapshot_id, "snapshot_id")
    vm = await _vm(core, ref, "snapshot")
    try:
        snap = await (await core.agent_for(vm)).snapshot(vm.id, snapshot_id)
    except PlasmaError:
        OPERATIONS.labels("snapshot", "error").inc()
        raise
    OPERATIONS.labels("snapshot", "ok").inc()
    await vm_events.record(core.store, vm, VmEventType.OPERATION, "SnapshotTaken",
                           f"snapshot {snapshot_id} ({'disks and memory' if snap.memory else 'disks'})")
    return snap


async def restore(core: Core, ref: VmRef, snapshot_id: str) -> VirtualMachine:
    validation.device_id(snapshot_id, "snapshot_id")
    vm = await _vm(core, ref, "restore")
    try:
        await (await core.agent_for(vm)).restore(vm.id, snapshot_id)
    except PlasmaError:
        OPERATIONS.labels("restore", "error").inc()
        raise
    OPERATIONS.labels("restore", "ok").inc()
    await vm_events.record(core.store, vm, VmEventType.OPERATION, "SnapshotRestored", f"snapshot {snapshot_id}")
    return (await core.find_vm(ref)).value


async def list_snapshots(core: Core, ref: VmRef) -> list[SnapshotInfo]:
    vm = (await core.find_vm(ref)).value
    return await (await core.agent_for(vm)).snapshots(vm.id)


async def delete(core: Core, ref: VmRef, snapshot_id: str) -> None:
    validation.device_id(snapshot_id, "snapshot_id")
    vm = await _vm(core, ref, "delete a snapshot of")
    await (await core.agent_for(vm)).delete_snapshot(vm.id, snapshot_id)
