"""Power operations on the control plane: start, stop, reboot, reset.

Each checks the transition table BEFORE it touches a hypervisor (a forbidden operation fails with
INVALID_STATE and changes nothing), records the transitional state (STARTING, STOPPING) with
compare-and-swap, calls the node's agent, then records the outcome. A failing agent call leaves the VM
in ERROR with `status.last_error` saying why.
"""

from __future__ import annotations

from plasmavmc.core import pending
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import boot, restarts
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms.lifecycle import moved, running, set_error, starting
from plasmavmc.errors import InvalidState, PlasmaError
from plasmavmc.observe.metrics import OPERATIONS
from plasmavmc.store.records import Versioned, mutate, replace
from plasmavmc.types.events import VmEventType
from plasmavmc.types.states import VmState, check_transition
from plasmavmc.types.vm import VirtualMachine

DEFAULT_STOP_TIMEOUT = 30


def _starting(vm: VirtualMachine) -> VirtualMachine:
    return starting(vm, boot.now())


def _restarting(vm: VirtualMachine) -> VirtualMachine:
    """The restart policy's start: its claim is cleared in this commit, the row of restarts goes on."""
    return _starting(restarts.unscheduled(vm))


def _started_by_hand(vm: VirtualMachine) -> VirtualMachine:
    """A StartVm: any scheduled automatic restart is dropped and the row of restarts begins again."""
    status = replace(vm.status, restarts=0, restart_due_at=0, restart_reason="")
    return _starting(replace(vm, status=status))


async def _begin(core: Core, op: pending.Op, vm: Versioned[VirtualMachine]) -> pending.Pending:
    """Record the operation as in flight (see core/pending.py) before its first state change."""
    record = pending.begin(op, vm.key, vm.value.id, core.server_id)
    await core.store.commit([pending.begin_write(record)])
    return record


async def start(core: Core, ref: VmRef, *, automatic: bool = False) -> VirtualMachine:
    """StartVm, or (`automatic`) the restart policy's restart, which keeps counting its row."""
    found = await core.find_vm(ref)
    check_transition(found.value.state, VmState.STARTING, operation="start")
    agent = await core.agent_for(found.value)
    op = await _begin(core, pending.Op.START, found)
    async with pending.driving(core.store, op) as drive:
        await mutate(core.store, VirtualMachine, found.key, _restarting if automatic else _started_by_hand)
        try:
            await agent.start_vm(found.value.id)
            observed = await agent.status(found.value.id)
        except PlasmaError as err:
            await set_error(core, found.key, f"start failed: {err.message}")
            OPERATIONS.labels("start", "error").inc()
            raise
        done = await drive.last_step(VirtualMachine, found.key, lambda vm: running(vm, observed, "start"))
    OPERATIONS.labels("start", "ok").inc()
    return done.value


def stopped(vm: VirtualMachine, operation: str) -> VirtualMachine:
    """`vm` STOPPED, its process gone (through the transition table)."""
    status = replace(vm.status, actual_state=VmState.STOPPED, host_pid=None)
    return moved(vm, VmState.STOPPED, operation, status=status)


async def stop(core: Core, ref: VmRef, force: bool, timeout_seconds: int) -> VirtualMachine:
    found = await core.find_vm(ref)
    check_transition(found.value.state, VmState.STOPPING, operation="stop")
    agent = await core.agent_for(found.value)
    op = await _begin(core, pending.Op.STOP, found)
    async with pending.driving(core.store, op) as drive:
        await mutate(core.store, VirtualMachine, found.key, lambda vm: moved(vm, VmState.STOPPING, "stop"))
        try:
            await agent.stop_vm(found.value.id, timeout_seconds or DEFAULT_STOP_TIMEOUT, force)
        except PlasmaError as err:
            await set_error(core, found.key, f"stop failed: {err.message}")
            OPERATIONS.labels("stop", "error").inc()
            raise
        done = await drive.last_step(VirtualMachine, found.key, lambda vm: stopped(vm, "stop"))
    OPERATIONS.labels("stop", "ok").inc()
    return done.value


async def reboot(core: Core, ref: VmRef, *, hard: bool) -> VirtualMachine:
    """Reboot (graceful: the guest powers off and boots again) or reset (hard: like the reset button)."""
    operation = "reset" if hard else "reboot"
    found = await core.find_vm(ref)
    if found.value.state != VmState.RUNNING:  # the diagram's reboot loop: RUNNING -> RUNNING only
        raise InvalidState(f"cannot {operation} a VM in state {found.value.state.value.upper()}")
    agent = await core.agent_for(found.value)
    try:
        if hard:
            await agent.reset_vm(found.value.id)
        else:
            await agent.reboot_vm(found.value.id)
        observed = await agent.status(found.value.id)
    except PlasmaError as err:
        await set_error(core, found.key, f"{operation} failed: {err.message}")
        OPERATIONS.labels(operation, "error").inc()
        raise
    said = vm_events.writes([vm_events.event(found.value, VmEventType.OPERATION, operation.capitalize() + (
        "ed" if operation == "reboot" else ""), f"{operation} done")])
    done = await mutate(core.store, VirtualMachine, found.key, lambda vm: running(vm, observed, operation), also=said)
    OPERATIONS.labels(operation, "ok").inc()
    return done.value
