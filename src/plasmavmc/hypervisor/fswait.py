"""Waiting for a file (a hypervisor's API socket) to appear, woken by inotify instead of sleep-polling.

A sleep-poll adds up to its interval to every start; an inotify watch on the file's directory wakes the
waiter as the file is created (or renamed into place). The watch's descriptor is read through the event
loop (`add_reader`), one inotify instance per wait, closed when the wait ends. Where inotify cannot be
had (the per-user instance limit, `fs.inotify.max_user_instances`, is reached), the wait falls back to
a 1 ms poll. While waiting, `alive()` is asked every `ALIVE_CHECK_S`, so a process that died before
making its file fails the wait at once instead of at the deadline. The descriptor itself is awaited
with `fdwait.readable`, as `process.py` awaits a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.fdwait import readable

ALIVE_CHECK_S = 0.05
_FALLBACK_POLL_S = 0.001
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_IN_CREATE = 0x100
_IN_MOVED_TO = 0x80

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def _watch_dir(directory: Path) -> int | None:
    """An inotify descriptor watching `directory` for new names; None when inotify is unavailable."""
    fd = int(_libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        return None
    if _libc.inotify_add_watch(fd, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO) < 0:
        os.close(fd)
        return None
    return fd


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass


async def _next_event(fd: int | None, within_s: float) -> None:
    """Until the watch on `fd` has events (or `within_s` passed); with no watch, a short sleep."""
    if fd is None:
        await asyncio.sleep(min(_FALLBACK_POLL_S, within_s))
        return
    if await readable(fd, within_s):
        _drain(fd)


async def created(path: Path, within_s: float, alive: Callable[[], bool] = lambda: True) -> float:
    """Wait until `path` exists; returns the seconds waited. HypervisorError when `alive()` turns false
    first, or after `within_s`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + within_s
    fd = None if path.exists() else _watch_dir(path.parent)
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
            os.close(fd)
    return loop.time() - started
