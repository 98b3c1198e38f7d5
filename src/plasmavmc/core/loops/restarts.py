"""The leader's restart loop: starts the VMs whose automatic restart is due (`core/vms/restarts.py`).

It follows the keys under `keys.RESTARTS` (each written in the same commit as the VM's
`restart_due_at`) and judges each against the VM record, so it is level-triggered and safe to run twice:
a VM no longer waiting (started by hand, stopped, deleted) only loses its key. A due one is taken with
compare-and-swap (the row counted, the RestartedAfter... event in the same commit, the schedule moved
`restarts.CLAIM_S` ahead as a claim) and then started like StartVm does (`power.start`), whose STARTING
commit clears the claim and the key; a leader that dies in between leaves the restart due again after
the claim, for the next leader. A start that fails leaves the VM in ERROR with the reason, as a StartVm
would.
"""

from __future__ import annotations

import asyncio
import logging
import time

from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms import power, restarts
from plasmavmc.errors import InvalidState, PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.records import Versioned, mutate, read
from plasmavmc.types.events import VmEventType
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
IDLE_S = 10.0  # the longest the loop sleeps when nothing is due (a new key rings its doorbell anyway)
WAITING = (VmState.ERROR, VmState.STOPPED)


def _waiting(vm: VirtualMachine) -> bool:
    return vm.state in WAITING and vm.status.restart_due_at > 0


class RestartLoop:
    """Starts the due restarts, each in its own task."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._active: dict[str, asyncio.Task[None]] = {}

    async def pass_once(self) -> float:
        """One look at every scheduled restart; returns seconds until the next one is due."""
        store, now, wait = self._core.store, time.time(), IDLE_S
        for kv in await store.list_all(keys.RESTARTS):
            if kv.key in self._active:
                continue
            vm_key = kv.value.decode(errors="replace")
            vm = await read(store, VirtualMachine, vm_key) if vm_key.startswith(keys.VMS) else None
            if vm is None or not _waiting(vm.value):
                await self._forget(kv.key, vm)
            elif vm.value.status.restart_due_at <= now:
                self._active[kv.key] = asyncio.create_task(self._restart(kv.key, vm))
            else:
                wait = min(wait, vm.value.status.restart_due_at - now)
        return max(wait, 0.1)

    async def _forget(self, key: str, vm: Versioned[VirtualMachine] | None) -> None:
        """A key whose VM no longer waits: the schedule (if any is left on the record) and the key go."""
        if vm is not None and vm.value.status.restart_due_at:
            await mutate(self._core.store, VirtualMachine, vm.key, restarts.unscheduled)  # the key goes with it
        else:
            await self._core.store.commit([Write(key, None)])

    async def _restart(self, key: str, vm: Versioned[VirtualMachine]) -> None:
        try:
            taken = await self._take(vm)
            if taken is not None:
                ref = VmRef(taken.org_id, taken.project_id, taken.id)
                await power.start(self._core, ref, automatic=True)
                log.info("vm %s restarted (%s)", taken.id, vm.value.status.restart_reason)
        except PlasmaError as err:
            log.warning("vm %s: automatic restart failed: %s", vm.value.id, err)
        finally:
            self._active.pop(key, None)

    async def _take(self, vm: Versioned[VirtualMachine]) -> VirtualMachine | None:
        """Claim the restart with its event in one commit; None if the VM no longer waits."""
        v = vm.value
        reason = v.status.restart_reason or "Restarted"
        message = (f"restart policy {v.spec.restart_policy.value}: restart {v.status.restarts + 1} of at most "
                   f"{restarts.MAX_RESTARTS} in a row (was {v.state.value.upper()}: "
                   f"{v.status.last_error or 'the guest powered off'})")
        said = vm_events.writes([vm_events.event(v, VmEventType.OPERATION, reason, message)])

        def take(current: VirtualMachine) -> VirtualMachine:
            if not _waiting(current):
                raise InvalidState(f"VM {current.id} no longer waits for a restart")
            return restarts.restarted(current)

        try:
            return (await mutate(self._core.store, VirtualMachine, vm.key, take, known=vm, also=said)).value
        except InvalidState:
            return None

    def cancel_all(self) -> None:
        for task in self._active.values():
            task.cancel()
