"""The cluster gauges of a replica, set from the store when it is scraped (`server/http.py`).

Every replica, follower or leader, answers a scrape with the same truth: VMs by state from this
replica's watched index of VM states (`core/loops/vm_states.py`, one decode per change), nodes
(capacity, allocation, state, heartbeat age) and images from one read each. While the index is being
built (a second or two at 100,000 VMs after a start) a scrape waits for it up to `INDEX_WAIT`, then
leaves the VM series out rather than scanning every record once per scrape (several scrapes scanning at
once are what kept the index from being built); without an index (tests) a narrow list of the state
field is counted (`Store.list_fields`). A node or state that disappeared is dropped from
the gauges, not left at its last value.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

from plasmavmc.core.context import Core
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.observe import metrics as m
from plasmavmc.store import keys
from plasmavmc.store.records import decode
from plasmavmc.types.image import Image, ImageStatus
from plasmavmc.types.node import Node, NodeState
from plasmavmc.types.states import VmState

GIB, MIB = 1024**3, 1024**2
PAGE = 5000
INDEX_WAIT = 3.0  # seconds a scrape waits for the replica's VM state index (being built after a start)
_STATES = frozenset(state.value for state in VmState)
_PER_NODE = (m.NODE_CAPACITY_VCPUS, m.NODE_ALLOCATED_VCPUS, m.NODE_CAPACITY_MEMORY, m.NODE_ALLOCATED_MEMORY,
             m.NODE_CAPACITY_STORAGE, m.NODE_ALLOCATED_STORAGE, m.HEARTBEAT_AGE)
#: node id -> (what its series show: state, capacity, allocation; its heartbeat-age series)
_shown: dict[str, tuple[tuple[NodeState, object, object], Any]] = {}


async def _vm_counts(core: Core, index: VmStates | None) -> Counter[VmState] | None:
    """VMs by state; None (the series are left out) while the replica's index is still being built."""
    if index is not None:
        return index.counts() if await index.until_ready(INDEX_WAIT) else None
    found: Counter[VmState] = Counter()
    after: str | None = None
    while True:  # the state field only, extracted by the store (no record decoded here)
        page = await core.store.list_fields(keys.VMS, ("state",), start_after=after, limit=PAGE)
        found.update(VmState(s) for (s,) in (i.values for i in page.items if i.values) if s in _STATES)
        if page.next_start_after is None:
            return found
        after = page.next_start_after


def _set_node(n: Node) -> None:
    m.NODE_CAPACITY_VCPUS.labels(n.id).set(n.capacity.vcpus)
    m.NODE_ALLOCATED_VCPUS.labels(n.id).set(n.allocated.vcpus)
    m.NODE_CAPACITY_MEMORY.labels(n.id).set(n.capacity.memory_mib * MIB)
    m.NODE_ALLOCATED_MEMORY.labels(n.id).set(n.allocated.memory_mib * MIB)
    m.NODE_CAPACITY_STORAGE.labels(n.id).set(n.capacity.storage_gib * GIB)
    m.NODE_ALLOCATED_STORAGE.labels(n.id).set(n.allocated.storage_gib * GIB)
    for state in NodeState:
        m.NODE_STATE.labels(n.id, state.value).set(1 if n.state == state else 0)


def _set_nodes(nodes: list[Node], now: float) -> None:
    """Each node's series, set again only when what they show changed (a scrape of 1,000 unchanged nodes
    was 13,000 label lookups); the heartbeat age on every scrape; a node gone is dropped."""
    for node in nodes:
        shown = _shown.get(node.id)
        if shown is None or shown[0] != (node.state, node.capacity, node.allocated):
            _set_node(node)
            shown = _shown[node.id] = ((node.state, node.capacity, node.allocated), m.HEARTBEAT_AGE.labels(node.id))
        shown[1].set(max(0.0, now - node.last_heartbeat))
    for gone in set(_shown) - {node.id for node in nodes}:
        del _shown[gone]
        for gauge in _PER_NODE:
            with contextlib.suppress(KeyError):
                gauge.remove(gone)
        for state in NodeState:
            with contextlib.suppress(KeyError):
                m.NODE_STATE.remove(gone, state.value)


async def refresh(core: Core, index: VmStates | None, is_leader: bool) -> None:
    counts = await _vm_counts(core, index)
    if counts is None:
        m.VMS_TOTAL.clear()  # not known yet: absent, never wrong
    else:
        for state in VmState:
            m.VMS_TOTAL.labels(state.value).set(counts[state])
    _set_nodes([v.value for v in await core.nodes.list()], time.time())
    images = [decode(Image, kv).value for kv in await core.store.list_all(keys.IMAGES)]
    by_status = Counter(i.status for i in images)
    for status in ImageStatus:
        m.IMAGES.labels(status.value).set(by_status[status])
    m.IMAGE_BYTES.set(sum(i.size_bytes for i in images))
    m.LEADER.set(1 if is_leader else 0)
