"""The `NodeUnresponsive` condition on the VMs of a node that stopped heartbeating (and its removal).

The store is the truth for which VMs live on a node (the assignment records), so this works after a
control-plane restart too. Which VMs those are comes from the replica's per-node index (`NodeIndex`:
the watched VM state index, `core/loops/vm_states.py`) when it is ready, so a node going NOT_READY or
back costs its own VMs, not a scan of the fleet; before that, from one scan of the assignments.
Setting and clearing are idempotent compare-and-swap updates of each VM.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection
from typing import Protocol

from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import mutate, replace
from plasmavmc.types.vm import Condition, VirtualMachine

log = logging.getLogger(__name__)
NODE_UNRESPONSIVE = "NodeUnresponsive"


def _with_condition(vm: VirtualMachine, message: str | None) -> VirtualMachine:
    others = tuple(c for c in vm.status.conditions if c.type != NODE_UNRESPONSIVE)
    had = len(others) != len(vm.status.conditions)
    if message is None:
        return replace(vm, status=replace(vm.status, conditions=others)) if had else vm
    if had:
        return vm
    flag = Condition(NODE_UNRESPONSIVE, True, "HeartbeatTimeout", message, int(time.time()))
    return replace(vm, status=replace(vm.status, conditions=(*others, flag)))


class NodeIndex(Protocol):
    def keys_on(self, node_ids: Collection[str]) -> list[str] | None:
        """The VM record keys on these nodes, or None while the index is not ready."""

    def settled_on(self, node_id: str, fence: int) -> frozenset[str]:
        """The ids of the node's VMs whose record is in a state no heartbeat report changes (see
        `core/nodes/reports.py`), when the index holds every VM change up to `fence`; else empty."""


async def vm_keys_on(store: Store, node_ids: str | Collection[str], index: NodeIndex | None = None) -> list[str]:
    """The record keys of every VM assigned to the node(s): from `index` when it is ready, else from one
    scan of the assignments (see placement.Assignment) however many nodes are asked about."""
    wanted = {node_ids} if isinstance(node_ids, str) else set(node_ids)
    known = index.keys_on(wanted) if index is not None else None
    if known is not None:
        return known
    out = []
    for kv in await store.list_all(keys.ASSIGNMENTS):
        a = json.loads(kv.value)
        if a["node_id"] in wanted:
            out.append(keys.vm(a["org_id"], a["project_id"], a["vm_id"]))
    return out


async def flag_vms(
    store: Store, node_ids: str | Collection[str], message: str | None, index: NodeIndex | None = None
) -> int:
    """Add (message set) or clear (None) `NodeUnresponsive` on every VM of the node(s); returns how many."""
    count = 0
    for key in await vm_keys_on(store, node_ids, index):
        try:
            await mutate(store, VirtualMachine, key, lambda vm: _with_condition(vm, message))
            count += 1
        except PlasmaError as err:  # deleted meanwhile, or too contended: the next pass tries again
            log.warning("condition on %s not updated: %s", key, err)
    return count
