"""`NodeCache`: the scheduler's in-memory view of every node record and its anti-affinity groups.

Ranking 10,000 nodes cannot re-read them from the store per VM, so placement ranks from this cache.
It is a hint, never the truth: every claim is a compare-and-swap on the node record's revision, so a
stale entry costs one lost commit (then `refresh` re-reads that node), never an over-commit. The cache
re-lists the nodes in the background when older than `max_age` seconds (new nodes appear that way;
only changed records are decoded), and on demand with `views(fresh_since=t)` — one reload shared by
every waiter — so NO_SUITABLE_NODE is only answered from data read after the request began.

One `asyncio.Lock` per node serialises this process's claims on a node, so concurrent placements queue
instead of failing each other's compare-and-swap; other processes are still fenced by the revision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from plasmavmc.scheduler.framework import NodeView
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.records import Versioned, decode_all
from plasmavmc.types.node import Node

log = logging.getLogger(__name__)
DEFAULT_MAX_AGE = 2.0


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
        self._unindexed = False  # a node was put that the views do not hold yet (rebuilt by `views`)
        self._loaded_at = float("-inf")  # monotonic time the last completed load STARTED
        self._loading: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, node_id: str) -> asyncio.Lock:
        return self._locks.setdefault(node_id, asyncio.Lock())

    def loaded_since(self, t: float) -> bool:
        return self._loaded_at >= t

    async def views(self, fresh_since: float | None = None) -> Sequence[NodeView]:
        """The nodes; reloaded first when `fresh_since` is newer than the last load (or nothing was
        loaded yet), else in the background when older than `max_age` (claims re-check anyway)."""
        now = time.monotonic()
        if fresh_since is not None or self._loaded_at == float("-inf"):
            await self._loaded_after(now if fresh_since is None else fresh_since)
        elif now - self._loaded_at > self.max_age and (self._loading is None or self._loading.done()):
            self._start_reload()
        if self._unindexed:
            self._rebuild()
        return self._views

    def _start_reload(self) -> asyncio.Task[None]:
        self._loading = asyncio.create_task(self.reload(), name="node-cache-reload")
        self._loading.add_done_callback(_log_failure)
        return self._loading

    async def _loaded_after(self, t: float) -> None:
        """Wait for a load that started at or after `t`: one shared by every waiter (single flight)."""
        while self._loaded_at < t:
            task = self._loading if self._loading is not None and not self._loading.done() else self._start_reload()
            await asyncio.shield(task)

    async def reload(self) -> None:
        """Re-list every node; only records whose revision changed are decoded again."""
        started = time.monotonic()
        listed = await self._store.list_all(keys.NODES, page_size=5000)
        groups: dict[str, set[str]] = {}
        for kv in await self._store.list_all(keys.ANTI_AFFINITY, page_size=5000):
            group, node_id = _group_and_node(kv.key)
            groups.setdefault(node_id, set()).add(group)
        changed: set[str] = set()
        seen: set[str] = set()
        for kv in listed:
            node_id = kv.key.removeprefix(keys.NODES)
            seen.add(node_id)
            mine = self._nodes.get(node_id)
            if mine is None or mine.revision < kv.mod_revision:  # a newer claim of ours is kept
                for node in decode_all(Node, [kv]):
                    self._nodes[node_id] = node
                    changed.add(node_id)
        for gone in set(self._nodes) - seen:
            del self._nodes[gone]
        changed |= {n for n in set(groups) | set(self._groups) if groups.get(n) != self._groups.get(n)}
        self._groups = groups
        if set(self._index) != set(self._nodes):
            self._rebuild()
        else:
            for node_id in changed & set(self._index):
                self._views[self._index[node_id]] = self._view(node_id)
        self._loaded_at = max(self._loaded_at, started)

    def _rebuild(self) -> None:
        ids = sorted(self._nodes)
        self._unindexed = False
        self._index = {node_id: i for i, node_id in enumerate(ids)}
        self._views = [self._view(node_id) for node_id in ids]

    def _view(self, node_id: str) -> NodeView:
        return NodeView(self._nodes[node_id].value, frozenset(self._groups.get(node_id, ())))

    def node(self, node_id: str) -> Versioned[Node] | None:
        """The node as last read or written here (no view made: a heartbeat's lookup)."""
        return self._nodes.get(node_id)

    def get(self, node_id: str) -> tuple[Versioned[Node], NodeView] | None:
        node = self._nodes.get(node_id)
        return None if node is None else (node, self._view(node_id))

    def recent(self, node_id: str) -> Versioned[Node] | None:
        """The node, when the cache was loaded no longer than `max_age` ago (None otherwise)."""
        if time.monotonic() - self._loaded_at > self.max_age:
            return None
        return self._nodes.get(node_id)

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
        else:  # rebuilt once when next asked for, not once per node of a fleet registering
            self._unindexed = True

    async def refresh(self, node_id: str, *, groups_too: bool = False) -> None:
        """Re-read one node after a lost compare-and-swap; `groups_too` (the VM has an anti-affinity
        group, whose key may be what conflicted) also makes the next `views()` reload in the background."""
        kv = await self._store.get(keys.node(node_id))
        readable = decode_all(Node, [] if kv is None else [kv])
        if not readable:
            self._nodes.pop(node_id, None)
            self._rebuild()
            return
        self.put(readable[0])
        if groups_too:
            self._loaded_at = min(self._loaded_at, time.monotonic() - self.max_age - 1)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("node cache reload failed: %s", exc)
