"""Removing a node's record (`plasmavmc node delete`): for operators whose machine is gone for good.

Only a NOT_READY node (its agent silent) with no VMs is removed, unless `force`: then any node, and
the VMs still assigned to it are flagged `NodeUnresponsive` saying the node was deleted; deleting such a
VM then skips the clean-up on the vanished node (`vms/lifecycle.finish_delete`). The record is deleted
with compare-and-swap on the revision read before the VMs were counted: every placement claim writes
the node record, so a VM placed meanwhile makes the delete lose (CONFLICT), never orphan it. An agent
that heartbeats again afterwards registers its node anew.
"""

from __future__ import annotations

import logging

from plasmavmc.core.context import Core
from plasmavmc.core.networks import peers
from plasmavmc.core.nodes import health
from plasmavmc.errors import InvalidState
from plasmavmc.store.records import read
from plasmavmc.types.node import NodeState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)


async def delete_node(core: Core, node_id: str, force: bool) -> int:
    """Remove the node; returns how many VMs were still assigned to it (non-zero only with `force`)."""
    node = await core.nodes.get(node_id)
    vm_keys = await health.vm_keys_on(core.store, node_id)
    if not force and node.value.state != NodeState.NOT_READY:
        raise InvalidState(
            f"node {node_id} is {node.value.state.value.upper()}: only a NOT_READY node (its agent stopped) "
            "is deleted; stop its agent first, or delete with force", field="node_id")
    if not force and vm_keys:
        raise InvalidState(f"node {node_id} still has {len(vm_keys)} VMs: drain it or delete them first, "
                           "or delete with force", field="node_id")
    await core.store.delete(node.key, expected_revision=node.revision)
    await core.nodes.cache.refresh(node_id)
    core.nodes.liveness.forget(node_id)
    core.nodes.digests.forget(node_id)
    if vm_keys:
        await health.flag_vms(core.store, node_id, f"its node {node_id} was deleted")
        vms = [vm.value for key in vm_keys if (vm := await read(core.store, VirtualMachine, key)) is not None]
        await peers.push_for_vms(core, vms)  # the other nodes drop this one from their overlays
    log.warning("node %s deleted%s (%d VMs were assigned to it)", node_id, " with force" if force else "",
                len(vm_keys))
    return len(vm_keys)
