"""Linux inotify through libc (ctypes): an instance, its watches, and the events read from it.

Shared by the waits that would otherwise sleep-poll a file: `fswait.py` (a hypervisor's API socket
appearing) and `filewatch.py` (a console log growing). Nothing here blocks the event loop: instances
are non-blocking and close-on-exec, are read through the loop by their users, and are closed by a
thread (`close`): closing an instance waits for the kernel's SRCU grace period, 13-16 ms on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Iterator
from pathlib import Path

IN_MODIFY = 0x2
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_IGNORED = 0x8000  # the watch is gone (its file deleted, or removed)
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (a name of `len` bytes follows)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def instance() -> int | None:
    """A new non-blocking inotify descriptor; None when none can be had (`fs.inotify.max_user_instances`)."""
    fd = int(_libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    return fd if fd >= 0 else None


def close(fd: int) -> None:
    """Close instance `fd` in a thread of the running loop's executor, so the loop does not wait for the
    kernel (here, when there is no running loop or it takes no more work: it is ending)."""
    try:
        asyncio.get_running_loop().run_in_executor(None, os.close, fd)
    except RuntimeError:
        os.close(fd)


def add_watch(fd: int, path: Path, mask: int) -> int | None:
    """The watch descriptor of `path` on instance `fd` (the same one for the same file); None on failure."""
    wd = int(_libc.inotify_add_watch(fd, os.fsencode(path), mask))
    return wd if wd >= 0 else None


def rm_watch(fd: int, wd: int) -> None:
    _libc.inotify_rm_watch(fd, wd)  # a watch already gone (its file deleted) fails harmlessly


def watch_dir(directory: Path, mask: int) -> int | None:
    """An instance with one watch on `directory`; None when either cannot be had."""
    fd = instance()
    if fd is None:
        return None
    if add_watch(fd, directory, mask) is None:
        os.close(fd)
        return None
    return fd


def drain(fd: int) -> None:
    """Read and drop every pending event."""
    for _ in events(fd):
        pass


def events(fd: int) -> Iterator[tuple[int, int]]:
    """(watch descriptor, mask) of every event pending on `fd`, read until it has none."""
    with contextlib.suppress(BlockingIOError):
        while data := os.read(fd, 65536):
            at = 0
            while at + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, at)
                yield wd, mask
                at += _EVENT.size + length
