"""Node records: registration and heartbeats from agents, cordon/uncordon, and heartbeat expiry.

The agent owns what it measures (capacity, hypervisors, address, accelerator); the control plane owns
`allocated` (claims, see `placement.py`), `allocatable` (capacity times the `[scheduler]` over-commit
ratios), the conditions and the administrative state (cordoned/draining). A heartbeat merges the two
with compare-and-swap, so a claim made concurrently is never overwritten; it merges into the scheduler
cache's copy of the record first (a stale copy loses the compare-and-swap and the record is read), and
puts what it wrote back into that cache.

A heartbeat that changes nothing but the time is not written (`liveness.py`: liveness is kept in
memory, the record's `last_heartbeat` refreshed only now and then), and once found so it is not even
merged again: the same report object against the record at the same revision is a liveness stamp. A
node silent for longer than the heartbeat timeout turns NOT_READY (nothing new lands there) and its
VMs get the `NodeUnresponsive` condition; its next heartbeat makes it READY and clears the condition,
and the VM statuses that heartbeat carries reconcile the records (`reports.py`). Which VMs are on a node comes from the
replica's per-node index when it is ready (`health.NodeIndex`), not from a scan of every VM.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from plasmavmc.core.nodes import health as node_health
from plasmavmc.core.nodes.liveness import Liveness
from plasmavmc.core.nodes.report_digests import ReportDigests
from plasmavmc.errors import Conflict, NodeNotFound
from plasmavmc.scheduler.cache import NodeCache
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store
from plasmavmc.store.cas import attempts, backoff
from plasmavmc.store.records import CorruptRecord, Versioned, decode, mutate, quarantine, read, replace
from plasmavmc.types import codec
from plasmavmc.types.node import Node, NodeCapacity, NodeState

log = logging.getLogger(__name__)

#: states an administrator set; a heartbeat does not override them
ADMIN_STATES = frozenset({NodeState.CORDONED, NodeState.DRAINING, NodeState.MAINTENANCE})
ABSORB_EVERY = 1.0  # seconds between a follower's reads of the leader's liveness table
REFLAG_EVERY = 60.0  # seconds between passes that re-flag the VMs of every NOT_READY node


@dataclass(frozen=True)
class Overcommit:
    """Over-commit ratio per resource: `allocatable` = capacity x ratio, rounded down."""

    cpu: float = 1.0
    memory: float = 1.0
    storage: float = 1.0

    def apply(self, capacity: NodeCapacity) -> NodeCapacity:
        return NodeCapacity(
            vcpus=math.floor(capacity.vcpus * self.cpu),
            memory_mib=math.floor(capacity.memory_mib * self.memory),
            storage_gib=math.floor(capacity.storage_gib * self.storage),
        )


def _merge(current: Node, reported: Node, now: int, overcommit: Overcommit) -> Node:
    state = current.state if current.state in ADMIN_STATES else NodeState.READY
    return replace(
        reported,
        state=state,
        allocatable=overcommit.apply(reported.capacity),
        allocated=current.allocated,
        taints=current.taints,
        conditions=current.conditions,
        last_heartbeat=now,
    )


def _decode_nodes(kvs: Sequence[KeyValue]) -> builtins.list[tuple[KeyValue, Versioned[Node] | None]]:
    """Each node record decoded, or None when it does not decode."""
    out: builtins.list[tuple[KeyValue, Versioned[Node] | None]] = []
    for kv in kvs:
        try:
            out.append((kv, decode(Node, kv)))
        except CorruptRecord:
            out.append((kv, None))
    return out


class NodeRegistry:
    def __init__(self, store: Store, heartbeat_timeout: float, overcommit: Overcommit | None = None) -> None:
        self._store = store
        self.heartbeat_timeout = heartbeat_timeout
        self.overcommit = overcommit or Overcommit()
        self.cache = NodeCache(store)
        self.liveness = Liveness(heartbeat_timeout)
        self._absorbed_at = float("-inf")
        self._reflagged_at = float("-inf")
        self.digests = ReportDigests()  # this replica's copy of each node's VM-report digest
        self.vm_index: node_health.NodeIndex | None = None  # the replica's per-node index, once wired
        self._listed: dict[str, Versioned[Node]] = {}  # key -> the record as `list` last decoded it
        # node id -> (the report, the record's revision) last found to change nothing but the time
        self._quiet: dict[str, tuple[Node, int]] = {}

    def _recent(self, current: Node, now: int) -> bool:
        """The stored heartbeat time is recent enough not to be rewritten (`Liveness.persist_after`)."""
        return now - current.last_heartbeat < self.liveness.persist_after()

    def _unchanged(self, current: Node, merged: Node, now: int) -> bool:
        """True when writing `merged` would change only the heartbeat time, and the stored time is recent."""
        return self._recent(current, now) and replace(merged, last_heartbeat=current.last_heartbeat) == current

    async def heartbeat(self, reported: Node) -> Node:
        """Register or refresh a node from its agent's report (its `last_heartbeat` is not read: the
        control plane stamps its own time). Returns the node record as stored: a heartbeat that changes
        nothing but the time is a liveness stamp in memory, and its record keeps its older time.

        Nothing changed is known without a merge when the report is the very object last found to
        change nothing (the servicer hands the same object for an unchanged report,
        `api/reported_nodes.ReportedNodes`) and the record is still at the revision it was compared with."""
        now_s = time.time()
        self.liveness.beat(reported.id, now_s)
        current = self.cache.node(reported.id)
        now = int(now_s)
        if current is not None:
            quiet = self._quiet.get(reported.id)
            if (quiet is not None and quiet[0] is reported and quiet[1] == current.revision
                    and self._recent(current.value, now)):
                return current.value
        return await self._merge_in(reported, current, now)

    async def _merge_in(self, reported: Node, current: Versioned[Node] | None, now: int) -> Node:
        """`heartbeat`'s write: the report merged into the record with compare-and-swap, or registered.
        First tried against the scheduler cache's copy (no store read): the write is a compare-and-swap
        on that revision, so a stale copy only costs a Conflict, then the record is read (and cached: an
        idle fleet's heartbeats read no node record, even before the first placement loads the cache)."""
        key = keys.node(reported.id)
        for attempt in attempts(f"node {reported.id}"):
            if current is None:
                current = await self._read_or_quarantine(key)
                if current is not None:
                    self.cache.put(current)  # the next heartbeat of this node reads nothing
            if current is None:
                fresh = replace(
                    reported,
                    state=NodeState.READY,
                    allocatable=self.overcommit.apply(reported.capacity),
                    last_heartbeat=now,
                )
                try:
                    revision = await self._store.put(key, codec.dumps(fresh), expected_revision=0)
                except Conflict:
                    await backoff(attempt)
                    continue
                self.cache.put(Versioned(fresh, revision, key))
                log.info("node %s registered (%s)", reported.id, reported.agent_address)
                return fresh
            merged = _merge(current.value, reported, now, self.overcommit)
            if self._unchanged(current.value, merged, now):
                self._quiet[reported.id] = (reported, current.revision)
                return current.value
            try:
                revision = await self._store.put(key, codec.dumps(merged), expected_revision=current.revision)
            except Conflict:
                current = None
                await backoff(attempt)
                continue
            self.cache.put(Versioned(merged, revision, key))
            if current.value.state == NodeState.NOT_READY:
                log.info("node %s is ready again", reported.id)
                await node_health.flag_vms(self._store, reported.id, None, self.vm_index)
            return merged
        raise AssertionError("unreachable: attempts() raises when exhausted")

    async def _read_or_quarantine(self, key: str) -> Versioned[Node] | None:
        """The node record at `key`; an unreadable one is moved aside and counts as absent."""
        try:
            return await read(self._store, Node, key)
        except CorruptRecord:
            kv = await self._store.get(key)
            if kv is not None:
                await quarantine(self._store, kv)
            return None

    async def get(self, node_id: str) -> Versioned[Node]:
        """The node record, its `last_heartbeat` as this replica knows it (`Liveness.shown`)."""
        await self._absorb_shared()
        found = await read(self._store, Node, keys.node(node_id))
        if found is None:
            raise NodeNotFound(f"node {node_id!r} does not exist", field="node_id")
        return Versioned(self.liveness.shown(found.value), found.revision, found.key)

    async def _absorb_shared(self) -> None:
        """Not leading: take in the leader's liveness table (`keys.LIVENESS`), one read."""
        if not self.liveness.leading and time.monotonic() - self._absorbed_at >= ABSORB_EVERY:
            self._absorbed_at = time.monotonic()
            kv = await self._store.get(keys.LIVENESS)
            if kv is not None:
                self.liveness.absorb(kv.value)

    async def share_liveness(self) -> None:
        """Leading: write this replica's liveness table as one key, for the other replicas."""
        await self._store.put(keys.LIVENESS, self.liveness.snapshot())

    async def list(self) -> list[Versioned[Node]]:
        """Every readable node (`last_heartbeat` as in `get`); an unreadable node record is moved aside
        (its agent's next heartbeat registers the node again)."""
        await self._absorb_shared()
        return [Versioned(self.liveness.shown(n.value), n.revision, n.key) for n in await self._records()]

    async def _records(self) -> builtins.list[Versioned[Node]]:
        """Every readable node record as stored (`list` without the liveness shown in it)."""
        kvs = await self._store.list_all(keys.NODES)
        known = self._listed
        changed = [kv for kv in kvs if (k := known.get(kv.key)) is None or k.revision != kv.mod_revision]
        # only the records changed since the last listing are decoded (an idle fleet's expiry pass decodes
        # none); 1,000 node records are tens of milliseconds of decoding: done in a worker thread
        decoded = dict(await asyncio.to_thread(_decode_nodes, changed)) if changed else {}
        self._listed = {}
        out = []
        for kv in kvs:
            found = decoded[kv] if kv in decoded else known[kv.key]
            if found is None:
                await quarantine(self._store, kv)
                continue
            self._listed[kv.key] = found
            out.append(found)
        return out

    async def set_admin_state(self, node_id: str, state: NodeState | None) -> Node:
        """Cordon (CORDONED), start a drain (DRAINING) or uncordon (None: back to READY or NOT_READY)."""

        def apply(node: Node) -> Node:
            if state is not None:
                return replace(node, state=state)
            fresh = time.time() < self.liveness.expires_at(node)
            return replace(node, state=NodeState.READY if fresh else NodeState.NOT_READY)

        def missing() -> Exception:
            return NodeNotFound(f"node {node_id!r} does not exist", field="node_id")

        return (await mutate(self._store, Node, keys.node(node_id), apply, missing=missing)).value

    async def expire(self) -> tuple[builtins.list[str], float]:
        """Mark READY nodes not heard from within the timeout (`Liveness.expires_at`) NOT_READY; returns
        their ids, and the wall time when the next READY node could expire (in a timeout at the latest).

        The VMs of a node that expires now are flagged at once; those of every NOT_READY node again every
        `REFLAG_EVERY` seconds (level-triggered: a flag lost to a crash between the two writes is set then;
        flagging a flagged VM writes nothing, but reads it, so not on every pass)."""
        expired = []
        reflag = time.monotonic() - self._reflagged_at >= REFLAG_EVERY
        nodes = await self._records()
        next_expiry = time.time() + self.heartbeat_timeout
        silent = [n.value.id for n in nodes if n.value.state == NodeState.NOT_READY]
        for node in nodes:
            if node.value.state != NodeState.READY:
                continue
            expires_at = self.liveness.expires_at(node.value)
            if expires_at >= time.time():
                next_expiry = min(next_expiry, expires_at)
            else:

                def stale(n: Node) -> Node:
                    if n.state == NodeState.READY and self.liveness.expires_at(n) < time.time():
                        return replace(n, state=NodeState.NOT_READY)
                    return n

                self.cache.put(await mutate(self._store, Node, node.key, stale))
                log.warning("node %s missed heartbeats: NOT_READY", node.value.id)
                expired.append(node.value.id)
        if expired or (silent and reflag):
            if reflag:
                self._reflagged_at = time.monotonic()
            # re-read: a node that heartbeated meanwhile has had its VMs' flags cleared; leave them so
            wanted = set(expired) | (set(silent) if reflag else set())
            still = [n.value.id for n in await self._records()
                     if n.value.state == NodeState.NOT_READY and n.value.id in wanted]
            why = f"its node has not sent a heartbeat for over {self.heartbeat_timeout:g}s"
            await node_health.flag_vms(self._store, still, why, self.vm_index)
        return expired, next_expiry
