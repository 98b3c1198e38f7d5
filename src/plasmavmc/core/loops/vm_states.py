"""`VmStates`: the state of every VM record, kept current from a watch, for the leader's reconcile.

The reconcile pass needs two things from the VM records: how many are in each state (the gauges of
spec §12.2) and which are DELETED and waiting for cleanup. Listing and decoding every record for that
on every pass costs O(VMs) each time (10,000 decodes every couple of seconds); this index costs one
decode per change instead. It lists the records once (and again after any watch failure), then follows
the watch from the revision of the first page. Events arrive in revision order; only the pages read
after the first one can be newer than an event replayed, so an event older than the entry a page gave
is ignored, and pages and replayed events converge on the latest state.

It is also the per-node index (`keys_on`, `core/nodes/health.NodeIndex`): which VM records name each
node, so a node going NOT_READY or back, or a drain, touches that node's VMs only.

It is also the reconcile loop's doorbell: `wait` returns when a VM record changed. It is a hint for a
level-triggered loop: the loop still runs a full pass every so often (`loops.py`), and while the index is
not `ready` the pass reads the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import Counter
from collections.abc import Collection
from typing import Any, NamedTuple

from plasmavmc.store import keys
from plasmavmc.store.base import EventType, Store, WatchEvent
from plasmavmc.store.watched import follow, keep_following
from plasmavmc.types import codec
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
PAGE_SIZE = 2000
PEEKED = ("state", "updated_at", "node_id")
_STATE_OF = {state.value: state for state in VmState}
KEYED_STATES = frozenset((VmState.DELETED,))  # the states whose keys `in_state` lists
_REPORTED = frozenset((VmState.RUNNING, VmState.ERROR))  # the states a heartbeat report may change


class Entry(NamedTuple):  # a tuple: the cheapest object to build 100,000 of after a start
    state: VmState
    updated_at: int
    revision: int  # the record's mod_revision this entry reflects
    node_id: str | None = None


class VmStates:
    """VM record key -> (state, updated_at, node), from one list then a watch; the keys by node, the
    DELETED keys and the count per state, so counts, a node's VMs and the DELETED ones cost what they
    return, not the fleet. (About 300 bytes per VM: a node id is one shared string, and only the
    DELETED keys are kept by state.)"""

    def __init__(self, store: Store, retry: float) -> None:
        self._store, self._retry = store, retry
        self._entries: dict[str, Entry] = {}
        self._by_node: dict[str, set[str]] = {}
        self._by_state: dict[VmState, set[str]] = {}  # only the states in `KEYED_STATES`
        self._counts: Counter[VmState] = Counter()
        self.ready = False
        self.revision = 0  # every change of a VM record up to this revision is in
        self.rang = asyncio.Event()
        self._built = asyncio.Event()  # set while ready

    def counts(self) -> Counter[VmState]:
        return +self._counts  # a copy, without the states counted down to 0

    def keys_on(self, node_ids: Collection[str]) -> list[str] | None:
        """The record keys of the VMs on these nodes; None while not ready (the caller reads the store)."""
        if not self.ready:
            return None
        return sorted(key for node in node_ids for key in self._by_node.get(node, ()))

    def settled_on(self, node_id: str, fence: int) -> frozenset[str]:
        """The ids of the VMs on `node_id` neither RUNNING nor ERROR (a heartbeat report changes only
        those: `core/nodes/reports.py`), if the index is ready and has every change up to `fence`
        (this process's own latest VM write); else empty. Cost: the node's VMs."""
        if not self.ready or self.revision < fence:
            return frozenset()
        on = self._by_node.get(node_id, ())
        return frozenset(key.rpartition("/")[2] for key in on if self._entries[key].state not in _REPORTED)

    def in_state(self, state: VmState) -> list[tuple[str, Entry]]:
        """The entries in `state`, one of `KEYED_STATES` (cost: how many there are, not how many VMs)."""
        if state not in KEYED_STATES:
            raise ValueError(f"the index keeps no keys by state {state.value}")
        return [(k, self._entries[k]) for k in self._by_state.get(state, ())]

    async def until_ready(self, timeout: float) -> bool:
        """Until the index is built (False if it is not after `timeout` seconds)."""
        if not self.ready:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._built.wait()
        return self.ready

    async def wait(self, timeout: float) -> None:
        """Until a VM record changes (or `timeout` seconds pass)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.rang.wait()
        self.rang.clear()

    async def run(self) -> None:
        """Keep the index current until cancelled; re-list after any failure."""
        await keep_following(self._follow, self._lost, self._retry, "vm state index")

    def _lost(self) -> None:
        self.ready = False
        self._built.clear()
        self.rang.set()

    async def _follow(self) -> None:
        self._entries.clear()
        self._by_node.clear()
        self._by_state.clear()
        self._counts.clear()
        await follow(self._store, keys.VMS, self._page, self._listed, self._event)

    async def _page(self, after: str | None) -> tuple[int, str | None]:
        # only the three fields, extracted by the store (SQLite: in SQL, off the GIL), so a rebuild of
        # 100,000 records after a restart takes a second or two and never holds the event loop
        page = await self._store.list_fields(keys.VMS, PEEKED, start_after=after, limit=PAGE_SIZE)
        for item in page.items:
            self._apply(item.key, item.mod_revision, _fields(item.values))
        return page.revision, page.next_start_after

    def _listed(self, revision: int) -> None:
        self.revision = revision
        self.ready = True
        self._built.set()
        self.rang.set()

    def _event(self, event: WatchEvent) -> None:
        if event.type == EventType.DELETE:
            entry = self._entries.get(event.key)
            if entry is not None and entry.revision < event.revision:
                self._drop(event.key)
        else:
            self._apply(event.key, event.revision, _peek(event.value))
        self.revision = max(self.revision, event.revision)
        self.rang.set()

    def _apply(self, key: str, revision: int, fields: tuple[VmState, int, str | None] | Exception) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.revision >= revision:
            return  # older than what a later page already told us
        if isinstance(fields, Exception):  # the full pass reads (and reports) it
            log.warning("vm state index: record %s at revision %d does not decode: %s", key, revision, fields)
            self._drop(key)
            return
        state, updated_at, node_id = fields
        if entry is not None:
            self._drop(key)
        node_id = sys.intern(node_id) if node_id else None  # one string per node, not one per VM
        self._entries[key] = Entry(state, updated_at, revision, node_id)
        self._counts[state] += 1
        if state in KEYED_STATES:
            self._by_state.setdefault(state, set()).add(key)
        if node_id:
            self._by_node.setdefault(node_id, set()).add(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._counts[entry.state] -= 1
        _discard(self._by_state, entry.state, key)
        if entry.node_id:
            _discard(self._by_node, entry.node_id, key)


def _peek(value: bytes) -> tuple[VmState, int, str | None] | Exception:
    try:
        state, updated_at, node_id = codec.peek(VirtualMachine, value, "state", "updated_at", "node_id")
    except (ValueError, TypeError, KeyError) as err:
        return err
    return state, updated_at, node_id


def _fields(values: tuple[Any, ...] | None) -> tuple[VmState, int, str | None] | Exception:
    """The three fields as `list_fields` read them, checked as `_peek` checks a decoded record."""
    if values is None:
        return ValueError("not JSON")
    state, updated_at, node_id = values
    try:
        if not isinstance(updated_at, int) or not (node_id is None or isinstance(node_id, str)):
            raise TypeError(f"updated_at {updated_at!r} / node_id {node_id!r}")
        return _STATE_OF[state], updated_at, node_id
    except (KeyError, TypeError) as err:  # TypeError: an unhashable state (a list, an object)
        return err


def _discard(index: dict[Any, set[str]], group: Any, key: str) -> None:
    """Remove `key` from `index[group]`, and the group when it is left empty."""
    members = index.get(group)
    if members is not None:
        members.discard(key)
        if not members:
            del index[group]
