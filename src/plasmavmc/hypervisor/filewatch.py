"""Waking whoever follows a growing file (a VM's console log) as it grows, instead of sleep-polling it.

One inotify instance per event loop, shared by every follower in that loop: the per-user limit on
instances (`fs.inotify.max_user_instances`, 128 by default) would not stretch to one per open console,
while watches are plentiful. The instance is read through the loop (`add_reader`); a write to a watched
file (IN_MODIFY) wakes every follower of that file (what a wake should wait for, e.g. the end of a line
written a byte at a time, is the reader's to say: `console.SerialConsole.read`). Two followers of one
file share its watch. The instance is
closed when its last follower goes (by a thread, `inotify.close`: the loop, the agent's every call and
heartbeat, would otherwise stop 13-16 ms each time the last console of the node is closed).

Where inotify cannot be had (no instance, or the file cannot be watched), or once a watch is gone (its
file deleted), `Follower.wait` sleeps `POLL_S` instead: the follower still works, as before, by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from plasmavmc.hypervisor import inotify

POLL_S = 0.05


class _Instance:
    """The inotify instance of one event loop and the followers of each of its watches."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.followers: dict[int, set[Follower]] = {}
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        for wd, mask in inotify.events(self.fd):
            gone = bool(mask & inotify.IN_IGNORED)  # the watch (its file) is gone: its followers poll now
            for follower in self.followers.pop(wd, set()) if gone else self.followers.get(wd, set()):
                if gone:
                    follower._wd = None
                follower._changed.set()

    def add(self, follower: Follower, path: Path) -> int | None:
        wd = inotify.add_watch(self.fd, path, inotify.IN_MODIFY)
        if wd is not None:
            self.followers.setdefault(wd, set()).add(follower)
        return wd

    def remove(self, follower: Follower, wd: int | None) -> None:
        """`follower` gone (from watch `wd`, if it still has one); the watch goes with its last follower,
        the instance with its last watch (a watch without followers is never kept)."""
        if wd is not None and (group := self.followers.get(wd)) is not None:
            group.discard(follower)
            if not group:
                del self.followers[wd]
                inotify.rm_watch(self.fd, wd)
        if not self.followers and _instances.get(self.loop) is self:
            del _instances[self.loop]
            self.loop.remove_reader(self.fd)
            inotify.close(self.fd)


_instances: dict[asyncio.AbstractEventLoop, _Instance] = {}


def _instance(loop: asyncio.AbstractEventLoop) -> _Instance | None:
    found = _instances.get(loop)
    if found is None:
        fd = inotify.instance()
        if fd is None:
            return None
        found = _instances[loop] = _Instance(loop, fd)
    return found


class Follower:
    """Wakes its owner when `path` is written to. Made inside the event loop it is used in; `close` it."""

    def __init__(self, path: Path) -> None:
        self._changed = asyncio.Event()
        self._instance = _instance(asyncio.get_running_loop())
        self._wd = self._instance.add(self, path) if self._instance is not None else None
        if self._instance is not None and self._wd is None:
            self._instance.remove(self, None)  # it may have been made for this follower alone
            self._instance = None

    @property
    def watching(self) -> bool:
        """Whether writes wake `wait` (False: it polls)."""
        return self._wd is not None

    async def wait(self, within_s: float) -> None:
        """Until the file was written to since the last `wait` returned (at once if it was), or
        `within_s` passed; without a watch, `POLL_S` at most. Check the file after each return."""
        if self._wd is None and not self._changed.is_set():
            await asyncio.sleep(min(POLL_S, within_s))
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):  # not wait_for: its task costs the wake two loop turns
                    await self._changed.wait()
        self._changed.clear()

    def close(self) -> None:
        if self._instance is not None:
            self._instance.remove(self, self._wd)
            self._instance = None
            self._wd = None
