"""`EventTail`: the SQLite store's latest events, read once per change for every watcher of this process.

Each watcher used to read the event log itself after every commit of the process: one query, one
thread hop and one wake-up per watcher per commit — seven on a server (VM records three times, names,
pending operations, restarts, servers), most finding nothing under their prefix, all on the event loop
and the reader thread while the commit's caller went on (issue 19: about 2 ms of every Firecracker
create+start). The tail reads what is new once, for every prefix in one query, keeps the last `KEEP`
events, and wakes only the watchers with a new event under their prefix. A watcher whose next revision
the tail does not cover (older than what it keeps, newer than what it has read, or before its first
read) reads the log itself, as before; `covers` says which.

A refresh starts `KICK_DELAY_S` after this process committed (`kick_soon`), so the request that made the
commit sends its answer before the watchers take the loop to look at what it wrote (issue 19: about
0.8 ms of a Firecracker RunVm, whose claim and last commit each woke three or four watchers on the
path); a reader waiting for this process's own write to reach a watcher has it read at once
(`Store.hasten_watches`). A refresh also starts at a watcher's poll (`refresh`, at most one
per half poll interval however many watchers poll), which is how writes by another process on the same
file are seen. A commit that lands while a refresh reads makes it read once more, so nothing committed
waits for the poll.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Awaitable, Callable

from plasmavmc.store.base import Compacted, WatchEvent

KICK_DELAY_S = 0.004  # from a commit to the read of its events, unless a reader waits for them
KEEP = 512  # events kept at least, at most twice as many (whole revisions: the oldest go first)

#: the events of every key from a revision: (events, the revision to go on from, the store's revision)
ReadFrom = Callable[[int], Awaitable[tuple[list[WatchEvent], int, int]]]


class EventTail:
    def __init__(self, read_from: ReadFrom, revision: Callable[[], Awaitable[int]]) -> None:
        self._read_from = read_from
        self._revision = revision
        self._events: list[WatchEvent] = []  # in log order: their revisions ascend
        self.base = 0  # the oldest revision kept whole (0: not started: `start` at the store's open)
        self.next = 0  # every event from `base` up to this revision (excluded) is kept
        self.current = 0  # the store's revision at the last read
        self._waiters: dict[asyncio.Event, str] = {}  # a watcher's wake-up → its prefix
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False  # a commit landed while the refresh in flight was reading
        self._refreshed_at = 0.0
        self._read_done = asyncio.Event()  # set (and replaced) after every read, and when a refresh ends
        self._failure: BaseException | None = None  # the last read's error, until a read succeeds
        self._kick_due: asyncio.TimerHandle | None = None  # the `kick` that `kick_soon` scheduled

    def start(self, revision: int) -> None:
        """Follow the log from after `revision` (the store's when it opened)."""
        self.current = revision
        self.base = self.next = revision + 1

    def covers(self, revision: int) -> bool:
        """Whether every event from `revision` on that the tail has read is kept."""
        return self.base <= revision <= self.next

    def events(self, prefix: str, start: int) -> list[WatchEvent]:
        """The kept events under `prefix` from revision `start` (which `covers`), in order."""
        first = bisect.bisect_left(self._events, start, key=_revision_of)
        return [e for e in self._events[first:] if e.key.startswith(prefix)]

    def waiter(self, prefix: str) -> asyncio.Event:
        """A wake-up set whenever a new event under `prefix` is read (`forget` it when done)."""
        wake = asyncio.Event()
        self._waiters[wake] = prefix
        return wake

    def forget(self, wake: asyncio.Event) -> None:
        self._waiters.pop(wake, None)

    def wake_all(self) -> None:
        for wake in self._waiters:
            wake.set()

    def close(self) -> None:
        """The store closed: no more reads; every watcher looks (and finds it closed)."""
        self._drop_kick_due()
        self.wake_all()

    def _drop_kick_due(self) -> None:
        if self._kick_due is not None:
            self._kick_due.cancel()
            self._kick_due = None

    def _running(self) -> bool:
        return self._refreshing is not None and not self._refreshing.done()

    def kick_soon(self) -> None:
        """This process committed: `kick` in `KICK_DELAY_S` (once for every commit until then)."""
        if self._waiters and self._kick_due is None:
            self._kick_due = asyncio.get_running_loop().call_later(KICK_DELAY_S, self.kick)

    def kick(self) -> None:
        """Read what is new for the watchers now (no-op without any)."""
        self._drop_kick_due()
        if not self._waiters:
            return
        if self._running():
            self._again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh(), name="sqlite-event-tail")
        self._refreshing.add_done_callback(_quiet)

    async def refresh(self, min_age: float) -> None:
        """Wait for the tail's next read: the one in flight, or one started now unless the last started
        within `min_age` seconds. Only that read, not the refresh's whole loop: under a steady stream of
        commits the loop may go on and on. A read that failed raises its error here."""
        if not self._running():
            if time.monotonic() - self._refreshed_at < min_age:
                return
            self.kick()
            if not self._running():  # no watcher: nothing to read for
                return
        await self._read_done.wait()
        if self._failure is not None:
            raise self._failure

    async def _refresh(self) -> None:
        self._refreshed_at = time.monotonic()
        try:
            while True:
                self._again = False
                try:
                    events, stop, current = await self._read_from(self.next)
                except Compacted:  # behind the log's retention: start over from now (the watchers
                    self._events = []  # behind it read the log and see Compacted)
                    self.start(await self._revision())
                    self.wake_all()
                    return
                self._failure = None
                self._events += events
                self.next, self.current = stop, current
                self._trim()
                self._wake(events)
                self._round()
                if stop > current and not self._again:
                    return
        except Exception as err:
            self._failure = err
            raise
        finally:
            self._round()

    def _round(self) -> None:
        """A read is done (or the refresh ended): whoever waits for one looks again."""
        done, self._read_done = self._read_done, asyncio.Event()
        done.set()

    def _trim(self) -> None:
        if len(self._events) <= 2 * KEEP:
            return
        self.base = self._events[-KEEP - 1].revision + 1  # whole revisions only
        del self._events[:bisect.bisect_left(self._events, self.base, key=_revision_of)]

    def _wake(self, events: list[WatchEvent]) -> None:
        if not events:
            return
        for wake, prefix in self._waiters.items():
            if not wake.is_set() and any(e.key.startswith(prefix) for e in events):
                wake.set()


def _revision_of(event: WatchEvent) -> int:
    return event.revision


def _quiet(task: asyncio.Task[None]) -> None:
    """A failed background refresh is retried at the next commit or poll; its waiters read the log
    themselves meanwhile (the error reaches them there)."""
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()
