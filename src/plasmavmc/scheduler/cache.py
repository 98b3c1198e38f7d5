"""`NodeCache`: the scheduler's in-memory view of every node record and its anti-affinity groups.

Ranking 10,000 nodes cannot re-read them from the store per VM, so placement ranks from this cache.
It is a hint, never the truth: every claim is a compare-and-swap on the node record's revision, so a
stale entry costs one lost commit (then `refresh` re-reads that node), never an over-commit. The cache
reloads everything when older than `max_age` seconds (new nodes appear that way), and on demand with
`views(fresh_since=t)` so NO_SUITABLE_NODE is only answered from data read after the request began.

One `asyncio.Lock` per node serialises this process's claims on a node, so concurrent placements queue
instead of failing each other's compare-and-swap; other processes are still fenced by the revision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from plasmavmc.core.records import Versioned, decode
from plasmavmc.scheduler.framework import NodeView
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.types.node import Node

DEFAULT_MAX_AGE = 1.0


def _group_and_node(key: str) -> tuple[str, str]:
    org, project, group, node_id = key.removeprefix(keys.ANTI_AFFINITY).split("/")
    return f"{org}/{project}/{group}", node_id


class NodeCache:
    def __init__(self, store: Store, max_age: float = DEFAULT_MAX_AGE) -> None:
        self._store = store
        self.max_age = max_age
        self._nodes: dict[str, Versioned[Node]] = {}
        self._groups: dict[str, set[str]] = {}
        self._views: list[NodeView] = []
        self._index: dict[str, int] = {}
        self._loaded_at = float("-inf")  # monotonic time the last completed load STARTED
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, node_id: str) -> asyncio.Lock:
        return self._locks.setdefault(node_id, asyncio.Lock())

    def loaded_since(self, t: float) -> bool:
        return self._loaded_at >= t

    async def views(self, fresh_since: float | None = None) -> Sequence[NodeView]:
        now = time.monotonic()
        if now - self._loaded_at > self.max_age or (fresh_since is not None and self._loaded_at < fresh_since):
            await self.reload()
        return self._views

    async def reload(self) -> None:
        started = time.monotonic()
        nodes = [decode(Node, kv) for kv in await self._store.list_all(keys.NODES, page_size=2000)]
        groups: dict[str, set[str]] = {}
        for kv in await self._store.list_all(keys.ANTI_AFFINITY, page_size=2000):
            group, node_id = _group_and_node(kv.key)
            groups.setdefault(node_id, set()).add(group)
        for node in nodes:  # a claim committed while we listed has the newer revision: keep it
            mine = self._nodes.get(node.value.id)
            if mine is None or mine.revision <= node.revision:
                self._nodes[node.value.id] = node
        seen = {n.value.id for n in nodes}
        for gone in set(self._nodes) - seen:
            del self._nodes[gone]
        self._groups = groups
        self._rebuild()
        self._loaded_at = max(self._loaded_at, started)

    def _rebuild(self) -> None:
        ids = sorted(self._nodes)
        self._index = {node_id: i for i, node_id in enumerate(ids)}
        self._views = [self._view(node_id) for node_id in ids]

    def _view(self, node_id: str) -> NodeView:
        return NodeView(self._nodes[node_id].value, frozenset(self._groups.get(node_id, ())))

    def get(self, node_id: str) -> tuple[Versioned[Node], NodeView] | None:
        node = self._nodes.get(node_id)
        return None if node is None else (node, self._view(node_id))

    def put(self, node: Versioned[Node], add_group: str | None = None) -> None:
        """Record a node as this process just wrote (or read) it."""
        node_id = node.value.id
        mine = self._nodes.get(node_id)
        if mine is not None and mine.revision > node.revision:
            return
        self._nodes[node_id] = node
        if add_group is not None:
            self._groups.setdefault(node_id, set()).add(add_group)
        if node_id in self._index:
            self._views[self._index[node_id]] = self._view(node_id)
        else:
            self._rebuild()

    async def refresh(self, node_id: str, *, groups_too: bool = False) -> None:
        """Re-read one node after a lost compare-and-swap; `groups_too` (the VM has an anti-affinity
        group, whose key may be what conflicted) also makes the next `views()` reload everything."""
        kv = await self._store.get(keys.node(node_id))
        if kv is None:
            self._nodes.pop(node_id, None)
            self._rebuild()
            return
        self.put(decode(Node, kv))
        if groups_too:
            self._loaded_at = float("-inf")
