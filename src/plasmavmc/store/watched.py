"""`WatchedPrefix`: this process's copy of every key under one prefix, kept current by one list then a watch.

It lists the prefix once (page by page, each page seeking to its token) and then follows the store's watch
from the revision of the first page; after any failure (`Compacted`, a store error) it is not `ready` and
lists again. Pages read after the first one may be newer than events replayed, so an event older than
the entry a page gave is ignored: pages and replayed events converge on the latest state.

`revision` is the store revision up to which every change under the prefix has been applied. With
`caught_up()` a reader waits (bounded) until it covers `store.fence(prefix)`, the revision of this
process's own latest write under the prefix: a caller always reads what it wrote through this process
(read-your-writes), without asking the store; a store that delivers its own writes to watchers a
little after it commits them (SQLite) is told to deliver them now (`hasten_watches`). Writes by other
processes appear after the watch delivers them (etcd: milliseconds; SQLite from another process: its
poll interval).

Each `Entry` has a `memo` slot for what a reader derives from the value (a decoded record, a rendered
message): it goes with the entry when the key changes, so it is never stale. Once its memo is set, the
reader may drop the value (to hold less: the API keeps a VM as its serialized message only). A `derive`
function given to the copy does that for every entry — at most once per change, never per read, and
off the path of the write that changed it (a reader derives an entry not reached yet itself):
- the listed entries in a pass that starts once the copy is ready (readiness does not wait for it);
- a changed entry `DERIVE_DELAY` after its change, so a burst of writes to one key (a create writes its
  VM record three times within a second) is derived once, for the last, and the write's caller does not
  wait behind the derivation (it used to run as the watch delivered each change: a tenth of the event
  loop's time under a stream of creates). At most `DERIVE_PENDING_MAX` changes wait: in a flood (another
  writer's thousands of records) the oldest waiting one is derived as each new one arrives, so what
  waits, holding its value, stays bounded, and a flood is derived as it comes, as before.
Both passes are background work with a budget: after every `DERIVE_SLICE` entries they give the event
loop back for `DERIVE_REST` times as long as the slice took, so they take at most a third of the loop's
time, and the requests of a start (a restart at 100,000 VMs: every agent's heartbeat and full resync at
once) are answered in time instead of waiting behind it (issue 19: the pass used to take the whole loop
for 17 s). What waits to be derived keeps its value meanwhile.

With `ordered`, the copy also keeps its keys sorted (one list, updated by bisection as keys come and go),
so a reader can page through any sub-prefix in key order — seeking to a key as the store does — without
a store call (`keys_after`).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Awaitable, Callable

from plasmavmc.errors import PlasmaError
from plasmavmc.observe.metrics import WATCHED_UNDERIVED
from plasmavmc.store.base import EventType, Store, WatchEvent

log = logging.getLogger(__name__)
PAGE_SIZE = 1000
DERIVE_SLICE = 25  # entries derived between yields to the event loop while listing
DERIVE_REST = 2.0  # after each slice the pass rests this many times the slice's own time
DERIVE_DELAY = 0.5  # seconds from a change to its entry's derivation (a read derives it sooner itself)
DERIVE_PENDING_MAX = 1000  # changes waiting for that at most: beyond, the oldest is derived at once

Derive = Callable[[str, "Entry"], None]

#: reads and applies one page after the token (None: the first); returns the page's revision and next token
PageReader = Callable[[str | None], Awaitable[tuple[int, str | None]]]


async def follow(store: Store, prefix: str, page: PageReader, listed: Callable[[int], None],
                 event: Callable[[WatchEvent], None]) -> None:
    """List-then-watch, the pattern of every watched copy: read the prefix page by page (`page`), tell
    `listed` the revision of the first page, then hand every change after it to `event`, in order, until
    the watch fails (raises). Pages after the first may be newer than the events replayed after it:
    the caller keeps, per key, the newest revision it saw and ignores older news."""
    start: int | None = None
    after: str | None = None
    while True:
        revision, after = await page(after)
        start = revision if start is None else start
        if after is None:
            break
    listed(start)
    async for change in store.watch(prefix, start + 1):
        event(change)


async def keep_following(follow_once: Callable[[], Awaitable[None]], lost: Callable[[], None], retry: float,
                         what: str) -> None:
    """Run `follow_once` until cancelled; after each failure (`Compacted`, a store error) call `lost`,
    wait `retry` seconds and start over from a fresh list."""
    while True:
        try:
            await follow_once()
        except PlasmaError as err:
            log.warning("%s: %s; listing again", what, err)
        lost()
        await asyncio.sleep(retry)


class Entry:
    """One key's value and the revision of its last write, as the watch saw it."""

    __slots__ = ("memo", "revision", "value")

    def __init__(self, value: bytes, revision: int) -> None:
        self.value = value
        self.revision = revision
        self.memo: object = None  # derived from `value` by a reader, once


class WatchedPrefix:
    """Key -> `Entry` for every key under `prefix`; run `run()` as a task to keep it current."""

    def __init__(self, store: Store, prefix: str, retry: float = 1.0, derive: Derive | None = None,
                 ordered: bool = False) -> None:
        self.store, self.prefix, self._retry, self._derive = store, prefix, retry, derive
        self.entries: dict[str, Entry] = {}
        self._ordered = ordered
        self._sorted: list[str] = []  # every key of `entries`, in order (when `ordered`)
        self._deriving: asyncio.Task[None] | None = None  # the listed entries' background derive pass
        self._changed: dict[str, None] = {}  # keys changed since the last pass over changes, in order
        self._deriving_changed: asyncio.Task[None] | None = None  # that pass (waits DERIVE_DELAY first)
        self.revision = 0  # every change under the prefix up to this revision is applied
        self.ready = False
        self._moved = asyncio.Event()  # swapped each time `revision` moves or readiness changes
        store.track_writes(prefix)

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def keys_after(self, prefix: str, start_after: str, limit: int) -> list[str]:
        """Up to `limit` keys under `prefix` (within this copy's prefix) that sort after `start_after`, in
        order; an `ordered` copy only."""
        assert self._ordered, "keys_after needs an ordered copy"
        keys = self._sorted
        first = bisect.bisect_right(keys, max(start_after, prefix))
        found = keys[first:first + limit]
        while found and not found[-1].startswith(prefix):  # the range ends where the prefix does
            found.pop()
        return found

    def covers_own_writes(self) -> bool:
        return self.ready and self.revision >= self.store.fence(self.prefix)

    async def caught_up(self, timeout: float) -> bool:
        """Until this copy holds every write this process made under the prefix; False when it is not
        ready, or still behind after `timeout` seconds (read the store then)."""
        if self.covers_own_writes():
            return True
        self.store.hasten_watches()
        return await self._until(self.covers_own_writes, timeout)

    async def seen(self, revision: int, timeout: float) -> bool:
        """Until every change up to `revision` is in (False after `timeout` seconds)."""
        return await self._until(lambda: self.ready and self.revision >= revision, timeout)

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    await self._moved.wait()
        except TimeoutError:
            return False
        return True

    def _advance(self, revision: int) -> None:
        self.revision = max(self.revision, revision)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def run(self) -> None:
        """Keep the copy current until cancelled; list again after any failure."""
        await keep_following(self._follow, self._lost, self._retry, f"watched copy of {self.prefix}")

    def _lost(self) -> None:
        self.ready = False
        self._advance(0)

    async def _follow(self) -> None:
        self.entries, self._sorted = {}, []
        try:
            await follow(self.store, self.prefix, self._page, self._listed, self._event)
        finally:
            for task in (self._deriving, self._deriving_changed):
                if task is not None:
                    task.cancel()
            self._deriving = self._deriving_changed = None
            self._changed = {}

    async def _page(self, after: str | None) -> tuple[int, str | None]:
        page = await self.store.list(self.prefix, start_after=after, limit=PAGE_SIZE)
        for kv in page.items:
            self._put(kv.key, kv.value, kv.mod_revision, listed=True)
        return page.revision, page.next_start_after

    def _listed(self, revision: int) -> None:
        self.ready = True
        self._advance(revision)
        if self._derive is not None:  # from now on the gauge counts down to 0 as the pass goes
            WATCHED_UNDERIVED.labels(self.prefix).set(len(self.entries))
            self._deriving = asyncio.create_task(self._derive_listed(), name=f"derive {self.prefix}")

    async def _derive_listed(self) -> None:
        """`derive` every listed entry not derived yet, a slice at a time."""
        left = WATCHED_UNDERIVED.labels(self.prefix)
        try:
            await self._derive_each(list(self.entries), lambda n: left.set(n))
        finally:
            left.set(0)

    async def _derive_changes(self) -> None:
        """`DERIVE_DELAY` after the first change not derived yet, derive every changed entry (each key's
        latest entry once), a slice at a time; changes made meanwhile join the pass."""
        await asyncio.sleep(DERIVE_DELAY)
        try:
            while self._changed:
                keys, self._changed = list(self._changed), {}
                await self._derive_each(keys, lambda n: None)
        finally:
            if self._deriving_changed is asyncio.current_task():
                self._deriving_changed = None

    def _derive_oldest_change(self) -> None:
        oldest = next(iter(self._changed))
        del self._changed[oldest]
        self._derive_current(oldest)

    def _derive_current(self, key: str) -> None:
        """`derive` the key's current entry unless it is gone or derived already."""
        entry = self.entries.get(key)
        if entry is not None and entry.memo is None and self._derive is not None:
            self._derive(key, entry)

    async def _derive_each(self, keys: list[str], left: Callable[[int], None]) -> None:
        """`derive` the current entry of each of `keys` that is not derived yet, resting after every
        `DERIVE_SLICE` (`left`: told how many keys are still to go)."""
        began = time.perf_counter()
        for i, key in enumerate(keys):
            self._derive_current(key)
            if i % DERIVE_SLICE == DERIVE_SLICE - 1:
                left(len(keys) - i - 1)
                await asyncio.sleep((time.perf_counter() - began) * DERIVE_REST)
                began = time.perf_counter()

    def _event(self, event: WatchEvent) -> None:
        if event.type == EventType.DELETE:
            entry = self.entries.get(event.key)
            if entry is not None and entry.revision < event.revision:
                del self.entries[event.key]
                if self._ordered:
                    del self._sorted[bisect.bisect_left(self._sorted, event.key)]
        else:
            self._put(event.key, event.value, event.revision)
        self._advance(event.revision)

    def _put(self, key: str, value: bytes, revision: int, listed: bool = False) -> None:
        entry = self.entries.get(key)
        if entry is None and self._ordered:
            if self._sorted and key < self._sorted[-1]:
                bisect.insort(self._sorted, key)
            else:
                self._sorted.append(key)  # listing gives keys in order: each one goes last
        if entry is None or entry.revision < revision:
            entry = self.entries[key] = Entry(value, revision)
            if self._derive is not None and not listed:
                self._changed[key] = None
                if len(self._changed) > DERIVE_PENDING_MAX:
                    self._derive_oldest_change()
                if self._deriving_changed is None:
                    self._deriving_changed = asyncio.create_task(self._derive_changes(),
                                                                 name=f"derive changes {self.prefix}")
