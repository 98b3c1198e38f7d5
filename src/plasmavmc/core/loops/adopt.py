"""Finishing an operation whose owner died: create, start or stop, from whatever state the VM reached.

Each step looks at the VM record and at what its node's agent reports before acting, so it is safe
after any prefix of the original operation ran (exactly-once effect):

- create: PENDING -> place (one commit, CAS on the VM) -> CREATING -> the agent makes the disks unless it
  already has the VM -> STOPPED;
- start: STOPPED -> STARTING -> the agent starts the VM unless it already runs -> RUNNING;
- stop: RUNNING -> STOPPING -> the agent stops it unless it is already down -> STOPPED.

Any other state means the operation's outcome is already recorded (or was overtaken by another one,
say a delete), and there is nothing left to do. An image ingest is not finished but abandoned
(`core.images.abandon`): its bytes went with the server that was receiving them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from plasmavmc.core import images as image_service
from plasmavmc.core.agents import AgentClient
from plasmavmc.core.context import Core
from plasmavmc.core.networks import nics, refresh
from plasmavmc.core.pending import Op, Pending
from plasmavmc.core.vms import lifecycle, power
from plasmavmc.errors import NotFound, PlasmaError
from plasmavmc.store.records import Versioned, mutate, read
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine, VmStatus

log = logging.getLogger(__name__)


async def finish_operation(core: Core, op: Pending) -> None:
    """Drive `op` to its outcome. Raises a retryable PlasmaError when it cannot progress yet."""
    if op.op == Op.IMAGE:
        await image_service.abandon(core.store, core.image_files, op.vm_key)
        return
    vm = await read(core.store, VirtualMachine, op.vm_key)
    if vm is None:
        return  # deleted meanwhile: nothing to finish
    log.info("adopting %s of vm %s (state %s)", op.op.value, vm.value.id, vm.value.state.value)
    try:
        if op.op == Op.CREATE:
            await _create(core, vm)
        elif op.op == Op.START:
            await _start(core, vm)
        else:
            await _stop(core, vm)
    except PlasmaError as err:
        if err.retryable:
            raise
        await lifecycle.set_error(core, vm.key, f"{op.op.value} failed: {err.message}")


Step = Callable[[VirtualMachine], VirtualMachine]


def _while(state: VmState, step: Step) -> Step:
    """`step` applied only to a record still in `state`, the one the adopter drove it to: a record
    that moved on meanwhile (the original driver finished, the VM was started or deleted since) is left
    as it is — an adopter's late last step must never undo a newer state (say, RUNNING -> STOPPED)."""
    return lambda v: step(v) if v.state == state else v


async def _agent_status(agent: AgentClient, vm_id: str) -> VmStatus | None:
    """What the agent reports for the VM; None when it does not know it."""
    try:
        return await agent.status(vm_id)
    except NotFound:
        return None


async def _create(core: Core, vm: Versioned[VirtualMachine]) -> None:
    if vm.value.state == VmState.PENDING:
        vm = await lifecycle.place(core, vm)
    if vm.value.state != VmState.CREATING:
        return
    agent = await core.agent_for(vm.value)
    if await _agent_status(agent, vm.value.id) is None:
        await agent.create_vm(vm.value, await lifecycle.images_for(core, vm.value.org_id, vm.value.spec),
                              await nics.port_requests(core.store, vm.value))
    await mutate(core.store, VirtualMachine, vm.key,
                 _while(VmState.CREATING, lambda v: lifecycle.moved(v, VmState.STOPPED, "create")))
    await refresh.ports_changed(core, vm.value, vm.value.spec.network)


async def _to(
    core: Core, vm: Versioned[VirtualMachine], source: VmState, target: VmState, operation: str
) -> Versioned[VirtualMachine] | None:
    """The VM in `target` (moved there from `source` if need be); None if it is in neither."""
    if vm.value.state == source:
        return await mutate(core.store, VirtualMachine, vm.key, lambda v: lifecycle.moved(v, target, operation))
    return vm if vm.value.state == target else None


async def _start(core: Core, vm: Versioned[VirtualMachine]) -> None:
    starting = await _to(core, vm, VmState.STOPPED, VmState.STARTING, "start")
    if starting is None:
        return
    agent = await core.agent_for(starting.value)
    observed = await _agent_status(agent, vm.value.id)
    if observed is None or observed.actual_state != VmState.RUNNING:
        await agent.start_vm(vm.value.id)
        observed = await agent.status(vm.value.id)
    final = observed
    await mutate(core.store, VirtualMachine, vm.key,
                 _while(VmState.STARTING, lambda v: lifecycle.running(v, final, "start")))


async def _stop(core: Core, vm: Versioned[VirtualMachine]) -> None:
    stopping = await _to(core, vm, VmState.RUNNING, VmState.STOPPING, "stop")
    if stopping is None:
        return
    agent = await core.agent_for(stopping.value)
    observed = await _agent_status(agent, vm.value.id)
    if observed is not None and observed.actual_state == VmState.RUNNING:
        await agent.stop_vm(vm.value.id, power.DEFAULT_STOP_TIMEOUT, False)
    await mutate(core.store, VirtualMachine, vm.key, _while(VmState.STOPPING, lambda v: power.stopped(v, "stop")))
