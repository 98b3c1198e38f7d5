"""Node drain: cordon the node, then cold-move every VM off it, reporting progress on the node.

A cold move of one VM: stop it if it runs (through its current agent), claim a new node with the
scheduler (STOPPED -> MIGRATING; the new claim and the release of the old node are one commit), create
it on the new node's agent, delete it on the old one, MIGRATING -> STOPPED, and start it again if it
ran before. A VM that cannot move stays where it is, and the drain says which and why: nothing is
dropped. A VM whose old agent does not answer is not moved (it might still run there).

Disks: a VM's disks are qcow2 overlays local to its node, and this cold move does NOT copy them: the
new node creates fresh overlays from the same images, so everything the guest wrote is lost. That is
only done when the caller says `allow_disk_loss`; otherwise every VM with disks is reported as not
movable. (Carrying the overlay needs an agent-to-agent disk transfer, which live migration will bring.)

Progress is the node's `Drain` condition: status False while running ("moved 3 of 5"), True when done
with every VM moved, reason `Incomplete` when some could not move, listing them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.networks import nics, refresh
from plasmavmc.core.nodes import health as node_health
from plasmavmc.core.vms import lifecycle, placement, power
from plasmavmc.errors import InvalidState, PlasmaError
from plasmavmc.store.records import Versioned, mutate, read, replace
from plasmavmc.types.image import Image
from plasmavmc.types.node import Node, NodeCondition, NodeState
from plasmavmc.types.states import VmState, transition
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
DRAIN = "Drain"
STOP_TIMEOUT = 30
_running: set[asyncio.Task[None]] = set()  # keeps background drains referenced until they finish


async def _report(core: Core, node_id: str, done: bool, reason: str, message: str) -> None:
    condition = NodeCondition(DRAIN, done, reason, message, int(time.time()))

    def apply(node: Node) -> Node:
        return replace(node, conditions=(*(c for c in node.conditions if c.type != DRAIN), condition))

    await mutate(core.store, Node, (await core.nodes.get(node_id)).key, apply)


async def start_drain(core: Core, node_id: str, allow_disk_loss: bool) -> Node:
    """Mark the node DRAINING (nothing new lands there) and move its VMs in the background."""
    await core.nodes.get(node_id)
    vm_count = len(await node_health.vm_keys_on(core.store, node_id, core.nodes.vm_index))
    await core.nodes.set_admin_state(node_id, NodeState.DRAINING)
    await _report(core, node_id, False, "InProgress", f"moving {vm_count} VMs")
    task = asyncio.create_task(_drain(core, node_id, allow_disk_loss), name=f"drain-{node_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)
    return (await core.nodes.get(node_id)).value


async def _drain(core: Core, node_id: str, allow_disk_loss: bool) -> None:
    handled: set[str] = set()
    stuck: list[str] = []
    moved = 0
    while True:  # again until no VM is left unhandled: the index may learn of a just-placed VM late
        vm_keys = [k for k in await node_health.vm_keys_on(core.store, node_id, core.nodes.vm_index)
                   if k not in handled]
        if not vm_keys:
            break
        for key in vm_keys:
            handled.add(key)
            found = await read(core.store, VirtualMachine, key)
            if found is None or found.value.node_id != node_id:
                continue
            try:
                await move(core, found, node_id, allow_disk_loss)
                moved += 1
            except PlasmaError as err:
                log.warning("drain %s: vm %s stays: %s", node_id, found.value.id, err.message)
                stuck.append(f"{found.value.id} ({found.value.name}): {err.message}")
            await _report(core, node_id, False, "InProgress", f"moved {moved}, {len(handled)} handled")
    if stuck:
        await _report(core, node_id, False, "Incomplete", f"moved {moved}; not movable: " + "; ".join(stuck))
    else:
        await _report(core, node_id, True, "Complete", f"moved {moved} of {len(handled)}")


async def move(core: Core, vm: Versioned[VirtualMachine], from_node: str, allow_disk_loss: bool) -> VirtualMachine:
    """Cold-move one VM off `from_node`; raises (leaving the VM where it is) when it cannot."""
    if vm.value.spec.disks and not allow_disk_loss:
        raise InvalidState("its local disk overlays would be recreated empty on the new node (allow_disk_loss)")
    ref = VmRef(vm.value.org_id, vm.value.project_id, vm.value.id)
    # an unreachable node cannot confirm the VM stopped: moving it could leave two copies running
    await (await core.agent_for(vm.value)).status(vm.value.id)
    was_running = vm.value.state == VmState.RUNNING
    await placement.check_fits(core, vm.value, from_node)  # before the stop: a VM that cannot move keeps running
    if was_running:
        await power.stop(core, ref, force=False, timeout_seconds=STOP_TIMEOUT)
    elif vm.value.state != VmState.STOPPED:
        raise InvalidState(f"VM is {vm.value.state.value.upper()}: only RUNNING or STOPPED VMs move")
    current = await core.find_vm(ref)
    images = await lifecycle.images_for(core, current.value.org_id, current.value.spec)

    def placer(v: VirtualMachine, node_id: str) -> VirtualMachine:
        state = transition(v.state, VmState.MIGRATING, vm_id=v.id, operation="move")
        return replace(v, state=state, node_id=node_id, updated_at=int(time.time()))

    moving = await placement.claim(core, current, placer, moving_from=from_node)
    await _step(core, moving, "create on the new node", lambda: _create(core, moving.value, images))
    await _cleanup_old(core, from_node, moving.value.id)
    await refresh.ports_changed(core, moving.value, moving.value.spec.network)  # its MACs live elsewhere now
    await mutate(core.store, VirtualMachine, moving.key, lambda v: lifecycle.moved(v, VmState.STOPPED, "move"))
    if was_running:
        return await power.start(core, ref)
    return (await core.find_vm(ref)).value


async def _create(core: Core, vm: VirtualMachine, images: list[Image]) -> None:
    agent = await core.agent_for(vm)
    await agent.create_vm(vm, images, await nics.port_requests(core.store, vm))


async def _step(core: Core, vm: Versioned[VirtualMachine], what: str, op: Callable[[], Awaitable[None]]) -> None:
    try:
        await op()
    except PlasmaError as err:
        await lifecycle.set_error(core, vm.key, f"move failed ({what}): {err.message}")
        raise


async def _cleanup_old(core: Core, node_id: str, vm_id: str) -> None:
    """Remove the VM's files on its old node; an unreachable old agent is logged, the move stands."""
    try:
        old = await core.nodes.get(node_id)
        await core.agents.client(old.value).delete_vm(vm_id)
    except PlasmaError as err:
        log.warning("vm %s moved, but cleanup on old node %s failed: %s", vm_id, node_id, err)
