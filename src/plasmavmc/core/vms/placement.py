"""Placement: rank nodes with the scheduler, then claim the best one that still fits, race-free.

The claim (node `allocated` += the VM's request), the VM's `node_id`, the assignment record
(`plasmavmc/scheduler/assignments/{vm_id}`, spec §8.1) and, for an anti-affinity group, the
(group, node) key are ONE store commit with compare-and-swap on the VM and node records (and "must not
exist" on the group key). A node is therefore never over-committed whatever the concurrency, across
processes too. The ranking comes from the scheduler's node cache (a hint); under the node's lock the
pick is re-checked against the cached record, and a lost commit re-reads the node and tries the next
one. A move (drain) releases the old node in the same commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from plasmavmc.core.context import Core
from plasmavmc.core.vms import events as vm_events
from plasmavmc.errors import Conflict, NoSuitableNode
from plasmavmc.scheduler.framework import Cycle, group_of, request_of
from plasmavmc.store import keys
from plasmavmc.store.base import Store, Write
from plasmavmc.store.cas import backoff
from plasmavmc.store.records import Versioned, read, replace
from plasmavmc.types import codec
from plasmavmc.types.node import Node, NodeCapacity
from plasmavmc.types.vm import VirtualMachine

__all__ = ["Assignment", "check_fits", "claim", "read_assignment", "release_writes", "remember_released",
           "request_of"]

MAX_ROUNDS = 50  # re-rankings before giving up with CONFLICT (each round tries TRY_NODES nodes)
TRY_NODES = 5

#: builds the placed record from the current one and the chosen node id (may raise INVALID_STATE)
Placer = Callable[[VirtualMachine, str], VirtualMachine]
#: commits a claim's writes (a create adds its own: the claim and the create are one commit)
Committer = Callable[[list[Write]], Awaitable[int]]


@dataclass(frozen=True)
class Assignment:
    vm_id: str
    org_id: str
    project_id: str
    node_id: str

    def encode(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @staticmethod
    def decode(raw: bytes) -> Assignment:
        return Assignment(**json.loads(raw))


def _group_key(vm: VirtualMachine, node_id: str) -> str | None:
    group = vm.spec.placement.anti_affinity_group
    return keys.anti_affinity(vm.org_id, vm.project_id, group, node_id) if group else None


def _with_allocated(node: Node, allocated: NodeCapacity) -> Node:
    return replace(node, allocated=allocated)


def claim_writes(
    vm: Versioned[VirtualMachine], node: Versioned[Node], placed: VirtualMachine, need: NodeCapacity
) -> tuple[Node, list[Write]]:
    """`need`: what the VM claims (`Scheduler.request`, with the per-VM overhead)."""
    claimed = _with_allocated(node.value, node.value.allocated + need)
    assignment = Assignment(vm.value.id, vm.value.org_id, vm.value.project_id, node.value.id)
    writes = [
        Write(vm.key, codec.dumps(placed), vm.revision),
        Write(node.key, codec.dumps(claimed), node.revision),
        Write(keys.assignment(vm.value.id), assignment.encode()),
    ]
    if (group_key := _group_key(vm.value, node.value.id)) is not None:
        writes.append(Write(group_key, vm.value.id.encode(), 0))
    return claimed, writes


def released(node: Node, need: NodeCapacity) -> Node:
    """`node` with a claim `need` given back. Clamped at 0: a claim made under another `[scheduler]
    vm_memory_overhead_mib` never goes negative."""
    left = node.allocated - need
    return _with_allocated(node, NodeCapacity(max(left.vcpus, 0), max(left.memory_mib, 0), max(left.storage_gib, 0)))


def release_writes(vm: VirtualMachine, node: Versioned[Node] | None, need: NodeCapacity, *,
                   keep_assignment: bool = False) -> list[Write]:
    """The writes that give a VM's claim `need` on `node` back (`released`; the caller adds the VM
    record's own write, and may then `remember_released`)."""
    writes = [] if keep_assignment else [Write(keys.assignment(vm.id), None)]
    if node is not None:
        writes.append(Write(node.key, codec.dumps(released(node.value, need)), node.revision))
        if (group_key := _group_key(vm, node.value.id)) is not None:
            writes.append(Write(group_key, None))
    return writes


def remember_released(core: Core, node: Versioned[Node] | None, need: NodeCapacity, revision: int) -> None:
    """Once `release_writes` committed at `revision`: the node cache holds the node as written, so this
    process's next claim there wins its compare-and-swap at once (a stale entry costs a lost commit
    and a re-read on the create path: a create after a delete on the same node would pay it)."""
    if node is not None:
        core.nodes.cache.put(Versioned(released(node.value, need), revision, node.key))


async def _try_node(
    core: Core, vm: Versioned[VirtualMachine], cycle: Cycle, node_id: str, placer: Placer, moving_from: str | None,
    commit: Committer,
) -> Versioned[VirtualMachine] | None:
    """Claim `node_id` for `vm` if it still fits; None when it does not or the commit lost a race."""
    cache = core.nodes.cache
    async with cache.lock(node_id):
        cached = cache.get(node_id)
        if cached is None or core.scheduler.reject_reason(cycle, cached[1]) is not None:
            return None
        node = cached[0]
        placed = placer(vm.value, node_id)
        claimed, writes = claim_writes(vm, node, placed, cycle.need)
        writes += vm_events.derive_writes(vm.value, placed)
        old: Versioned[Node] | None = None
        if moving_from is not None:
            old = await read(core.store, Node, keys.node(moving_from))
            writes += release_writes(vm.value, old, cycle.need, keep_assignment=True)
        try:
            rev = await commit(writes)
        except Conflict:
            await cache.refresh(node_id, groups_too=group_of(vm.value) is not None)
            return None
        cache.put(Versioned(claimed, rev, node.key), group_of(vm.value))
    remember_released(core, old, cycle.need, rev)
    return Versioned(placed, rev, vm.key)


async def check_fits(core: Core, vm: VirtualMachine, moving_from: str) -> None:
    """Raise NO_SUITABLE_NODE (explained) unless some node other than `moving_from` could take `vm` now.

    A drain asks this before it stops a VM, so a VM that cannot move is left running where it is.
    """
    views = [v for v in await core.nodes.cache.views(time.monotonic()) if v.node.id != moving_from]
    core.scheduler.rank(core.scheduler.cycle(vm), views, f"no node other than {moving_from} is registered")


async def claim(
    core: Core, vm: Versioned[VirtualMachine], placer: Placer, *, moving_from: str | None = None,
    only_node: str | None = None, commit: Committer | None = None,
) -> Versioned[VirtualMachine]:
    """Put `vm` on the best node that takes it (only `only_node`, when given: a clone goes where its
    snapshot is); NO_SUITABLE_NODE (explained) when none can. `commit` commits the claim's writes (the
    store's commit by default); a VM not stored yet (revision 0) is written by that commit itself."""
    started = time.monotonic()
    fresh_since: float | None = None
    current = vm
    for attempt in range(MAX_ROUNDS):
        cycle = core.scheduler.cycle(current.value)  # the scheduler's state for this round, shared by its plugins
        views = await core.nodes.cache.views(fresh_since)
        none_left = "no nodes are registered"
        if moving_from is not None:
            none_left = f"no node other than {moving_from} is registered"
            views = [v for v in views if v.node.id != moving_from]
        if only_node is not None:
            none_left = f"node {only_node} (where the source snapshot is) is not registered"
            views = [v for v in views if v.node.id == only_node]
        try:
            ranking = core.scheduler.rank(cycle, views, none_left)
        except NoSuitableNode:
            if core.nodes.cache.loaded_since(started):
                raise
            fresh_since = started  # judged on cached data: confirm on a fresh read first
            continue
        for view in ranking[:TRY_NODES]:
            placed = await _try_node(core, current, cycle, view.node.id, placer, moving_from,
                                     commit or core.store.commit)
            if placed is not None:
                return placed
        await backoff(attempt)  # every node tried lost its race: spread out before the next round
        if vm.revision == 0:
            continue  # a create: no record to read again (the claim's commit writes it)
        reread = await read(core.store, VirtualMachine, vm.key)
        if reread is None:
            raise Conflict(f"VM {vm.value.id} was deleted while it was being placed")
        current = reread
    raise Conflict(f"VM {vm.value.id}: placement kept losing races; try again")


async def read_assignment(store: Store, vm_id: str) -> Assignment | None:
    kv = await store.get(keys.assignment(vm_id))
    return None if kv is None else Assignment.decode(kv.value)
