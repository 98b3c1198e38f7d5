"""Restart policy (`spec.restart_policy`): whether a VM whose hypervisor ended unasked comes back, when,
and the record of why.

An exit the agent reports (or a heartbeat shows) moves a RUNNING VM out of RUNNING (`nodes/reports.py`);
`after_exit` decides, in that same record change, whether it is restarted:

- `never` (the default): it stays down, STOPPED, with the reason in `last_error` (a crash, a host reboot —
  every hypervisor process gone at once, whether the agent saw them go or found them gone when it
  started) and in the NotRestarted event; a guest power-off leaves STOPPED with no error. STOPPED, not
  ERROR, as a cloud's power-state sync does (Nova: SHUTOFF): the VM is intact and starts again as it was;
  ERROR is kept for what PlasmaVMC gave up on (an operation that failed, restarts exhausted);
- `on-failure`: a crash or a host reboot is restarted; a clean guest power-off stays STOPPED;
- `always`: a crash, a host reboot and a guest power-off are restarted.

A restart is scheduled, not done here: `restart_due_at` (backoff 1, 2, 4, 8, 16 s for the 1st..5th
restart in a row) and `restart_reason` go into the VM's status, and the deriver below puts a key under
`keys.RESTARTS` in the same commit, which the leader's restart loop (`core/loops/restarts.py`) follows.
A VM restarted `MAX_RESTARTS` times in a row, each run shorter than `STABLE_S`, is not restarted again:
it ends in ERROR saying so. Every decision is an event in the same commit: RestartScheduled, or
NotRestarted with the reason; the restart itself records RestartedAfterCrash / RestartedAfterHostReboot /
RestartedAfterPowerOff.
"""

from __future__ import annotations

import time

from plasmavmc.core.vms import events as vm_events
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.records import on_change, replace
from plasmavmc.types.events import VmEventType
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import RestartPolicy, VirtualMachine

MAX_RESTARTS = 5  # automatic restarts in a row before the VM is left in ERROR
STABLE_S = 300  # a run at least this long ends the row: the next failure counts from 1 again
BACKOFF_S = 1  # the first restart waits this long; each next one twice as long
MAX_BACKOFF_S = 60
CLAIM_S = 60  # a restart taken by a leader that records no start in this long is due again

REASONS = {
    ExitKind.CRASHED: "RestartedAfterCrash",
    ExitKind.HOST_REBOOT: "RestartedAfterHostReboot",
    ExitKind.GUEST_POWEROFF: "RestartedAfterPowerOff",
}
_CAUSES = {ExitKind.CRASHED: "a crash", ExitKind.HOST_REBOOT: "a host reboot",
           ExitKind.GUEST_POWEROFF: "a guest power-off"}


def wanted(policy: RestartPolicy, kind: ExitKind) -> bool:
    if kind not in REASONS:
        return False  # requested exits are the operation's business
    return policy == RestartPolicy.ALWAYS or (policy == RestartPolicy.ON_FAILURE and kind != ExitKind.GUEST_POWEROFF)


def backoff_s(restarts: int) -> int:
    """Seconds before the (restarts+1)-th restart in a row."""
    return int(min(BACKOFF_S * 2 ** restarts, MAX_BACKOFF_S))


def in_a_row(vm: VirtualMachine, now: int) -> int:
    """Automatic restarts in a row so far (0 when the last run was stable)."""
    return vm.status.restarts if now - vm.status.last_restart_at < STABLE_S else 0


def after_exit(vm: VirtualMachine, kind: ExitKind, reason: str) -> VirtualMachine:
    """The RUNNING `vm` after its hypervisor ended unasked (`kind`, `reason`): STOPPED or ERROR, with a
    restart scheduled when its policy says so (the caller moves the state; this sets the rest)."""
    target = VmState.STOPPED
    now = int(time.time())
    row = in_a_row(vm, now)
    status = replace(vm.status, actual_state=target, host_pid=None, restart_due_at=0, restart_reason="",
                     restarts=row, last_error=None if kind == ExitKind.GUEST_POWEROFF else reason)
    if wanted(vm.spec.restart_policy, kind):
        if row >= MAX_RESTARTS:
            target = VmState.ERROR
            status = replace(status, actual_state=target, last_error=(
                f"restarted {row} times in a row (restart policy {vm.spec.restart_policy.value}) and it ended "
                f"again after {_CAUSES[kind]}: {reason}; not restarted any more"))
        else:
            status = replace(status, restart_due_at=now + backoff_s(row), restart_reason=REASONS[kind])
    return replace(vm, state=target, status=status)


def restarted(vm: VirtualMachine) -> VirtualMachine:
    """The record as the restart loop takes it: one more restart in the row, and the schedule moved
    `CLAIM_S` ahead rather than cleared — the start's STARTING commit clears it (`unscheduled`), so
    a leader that dies between the two leaves a restart that is due again, not a lost one."""
    now = int(time.time())
    status = replace(vm.status, restart_due_at=now + CLAIM_S, restarts=vm.status.restarts + 1, last_restart_at=now)
    return replace(vm, status=status, updated_at=now)


def unscheduled(vm: VirtualMachine) -> VirtualMachine:
    return replace(vm, status=replace(vm.status, restart_due_at=0, restart_reason=""))


def _decision(old: VirtualMachine, new: VirtualMachine) -> list[Write]:
    if old.state != VmState.RUNNING or new.state not in (VmState.ERROR, VmState.STOPPED) or new.status.host_pid:
        return []  # not an exit's record change (a stop goes through STOPPING; a failed reboot keeps its pid)
    policy = new.spec.restart_policy.value
    if new.status.restart_due_at:
        wait = max(new.status.restart_due_at - int(time.time()), 0)
        message = (f"restart policy {policy}: restart {new.status.restarts + 1} of at most {MAX_RESTARTS} in a "
                   f"row in {wait} s ({new.status.restart_reason})")
        return vm_events.writes([vm_events.event(new, VmEventType.OPERATION, "RestartScheduled", message)])
    if new.status.restarts >= MAX_RESTARTS and new.spec.restart_policy != RestartPolicy.NEVER:
        message = new.status.last_error or "not restarted any more"
    else:
        message = f"restart policy {policy}: not restarted ({new.status.last_error or 'the guest powered off'})"
    return vm_events.writes([vm_events.event(new, VmEventType.OPERATION, "NotRestarted", message)])


def derive_writes(old: VirtualMachine, new: VirtualMachine) -> list[Write]:
    """The restart index key follows `restart_due_at`; an unasked exit's decision is an event."""
    out = []
    if new.status.restart_due_at != old.status.restart_due_at:
        key = keys.restart(new.id)
        vm_key = keys.vm(new.org_id, new.project_id, new.id)
        out.append(Write(key, vm_key.encode()) if new.status.restart_due_at else Write(key, None))
    return out + _decision(old, new)


on_change(VirtualMachine, derive_writes)
