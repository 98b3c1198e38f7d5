"""Waiting for a file (a hypervisor's API socket) to appear, woken by inotify instead of sleep-polling.

A sleep-poll adds up to its interval to every start; an inotify watch on the file's directory wakes the
waiter as the file is created (or renamed into place). The watch's descriptor is read through the event
loop (`add_reader`), one inotify instance per wait, closed when the wait ends (by a thread:
`inotify.close`). Where inotify cannot be had (the per-user instance limit,
`fs.inotify.max_user_instances`, is reached), the wait falls back to a 1 ms poll. While waiting,
`alive()` is asked every `ALIVE_CHECK_S`, so a process that died before making its file fails the wait
at once instead of at the deadline. The descriptor itself is awaited
with `fdwait.readable`, as `process.py` awaits a pidfd.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.fdwait import readable
from plasmavmc.hypervisor import inotify

ALIVE_CHECK_S = 0.05
_FALLBACK_POLL_S = 0.001


async def _next_event(fd: int | None, within_s: float) -> None:
    """Until the watch on `fd` has events (or `within_s` passed); with no watch, a short sleep."""
    if fd is None:
        await asyncio.sleep(min(_FALLBACK_POLL_S, within_s))
        return
    if await readable(fd, within_s):
        inotify.drain(fd)


async def created(path: Path, within_s: float, alive: Callable[[], bool] = lambda: True) -> float:
    """Wait until `path` exists; returns the seconds waited. HypervisorError when `alive()` turns false
    first, or after `within_s`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + within_s
    fd = None if path.exists() else inotify.watch_dir(path.parent, inotify.IN_CREATE | inotify.IN_MOVED_TO)
    try:
        while not path.exists():  # checked after the watch is set: a creation in between is not missed
            if not alive():
                raise HypervisorError(f"the process exited before it created {path.name}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise HypervisorError(f"{path.name} not created in {within_s:.0f}s")
            await _next_event(fd, min(remaining, ALIVE_CHECK_S))
    finally:
        if fd is not None:
            inotify.close(fd)
    return loop.time() - started
