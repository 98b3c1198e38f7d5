"""The serial console of a VM as a `ConsoleStream`: output from a log file, input to a unix socket.

Shared by backends whose hypervisor can (a) append every byte of serial output to a file — QEMU's chardev
`logfile=…,logappend=on` — and (b) accept console input on a unix socket. The log file is the source
of truth for output: it holds the history that a new reader replays (the last `HISTORY_BYTES`, our
"ring buffer") and keeps recording while nobody is connected.

Bounding the log without losing or shifting bytes: the hypervisor appends with O_APPEND, so the file
cannot be rotated (the writer keeps its descriptor) and truncating would race with its writes. Instead
`bound_log` punches a hole over everything but the last `KEEP_BYTES` (`fallocate(PUNCH_HOLE)`, supported
by ext4, xfs, btrfs and tmpfs): the blocks are freed, the apparent size and every offset stay the same,
so concurrent readers and the writer are undisturbed. Disk use stays under `MAX_BYTES` + one trim's
growth. It runs when the VM starts, whenever a reader sees the file grow past the limit, and from the
backend's status calls. Where hole punching is unsupported the file is left to grow (logged once).

Following the file: a reader that has caught up waits until the file is written to (`filewatch.Follower`,
inotify; a 50 ms poll of its size where inotify cannot be had), so output reaches a console as the
hypervisor writes it, and an idle console costs nothing; it looks whether the hypervisor still runs every
`ALIVE_CHECK_S`. A hypervisor writes its UART's output a byte at a time: whole lines go out at once (a
line still being written after them waits for the next read); a lone line still being written is read
again at each write while the writes keep coming (less than `SETTLE_S` apart, for `HOLD_S` at most), so
a line comes whole, in one read, as soon as its end is written, and a prompt without a line's end once
the writes pause. Input goes through one connection per VM shared by every stream (`_SharedInput`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import struct
import termios
from collections.abc import Callable
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.filewatch import Follower

log = logging.getLogger(__name__)

HISTORY_BYTES = 256 * 1024
KEEP_BYTES = 256 * 1024
MAX_BYTES = 2 * 1024 * 1024
ALIVE_CHECK_S = 0.2
SETTLE_S = 0.001  # a line still being written is held while the next write comes within this ...
HOLD_S = 0.01  # ... this long at most
_FLUSH_POLL_S = 0.05
_FLUSH_WAIT_S = 2.0
_CHUNK = 64 * 1024
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLOCK = 4096

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_punch_unsupported_warned = False


def bound_log(path: Path, *, max_bytes: int = MAX_BYTES, keep_bytes: int = KEEP_BYTES) -> None:
    """Free all but the last `keep_bytes` of `path` once it uses more than `max_bytes` of disk."""
    global _punch_unsupported_warned
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if st.st_blocks * 512 <= max_bytes:
            return
        end = (max(st.st_size - keep_bytes, 0) // _BLOCK) * _BLOCK
        if end and _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, end) != 0:
            err = ctypes.get_errno()
            if not _punch_unsupported_warned:
                _punch_unsupported_warned = True
                log.warning("cannot bound console log %s: %s", path, os.strerror(err))
    finally:
        os.close(fd)


def _now() -> float:
    return asyncio.get_running_loop().time()


class SerialConsole:
    """A `ConsoleStream`: replays the log's tail, follows it, and writes input to the console socket.

    `alive` tells whether the hypervisor still runs: once it does not and the log is read to its end,
    `read` returns b"" (end of stream).
    """

    def __init__(self, log_path: Path, socket_path: Path, alive: Callable[[], bool],
                 *, history_bytes: int = HISTORY_BYTES) -> None:
        self._log_path = log_path
        self._socket_path = socket_path
        self._alive = alive
        self._history = history_bytes
        self._file: int | None = None
        self._follower: Follower | None = None
        self._offset = 0
        self._closed = False
        self._input: _SharedInput | None = None

    def _open(self) -> int:
        if self._file is None:
            try:
                self._file = os.open(self._log_path, os.O_RDONLY)
            except OSError as exc:
                raise HypervisorError(f"console log {self._log_path} unavailable: {exc}") from exc
            self._follower = Follower(self._log_path)  # before the first look at its size: no write missed
            self._offset = max(os.fstat(self._file).st_size - self._history, 0)
        return self._file

    async def read(self) -> bytes:
        """The next chunk of console output; the first calls replay the retained history. A chunk ends
        at a line's end where the hypervisor is still writing the line after it (`SETTLE_S`, `HOLD_S`)."""
        held_until: float | None = None
        while not self._closed:
            fd = self._open()
            size = os.fstat(fd).st_size
            if size > self._offset:
                data = os.pread(fd, min(size - self._offset, _CHUNK), self._offset)
                if len(data) < _CHUNK and not data.endswith(b"\n"):
                    if lines := data.rfind(b"\n") + 1:
                        data = data[:lines]  # the whole lines now, the one still being written next
                    else:
                        held_until = held_until or _now() + HOLD_S
                        if await self._grows(fd, size, held_until):
                            continue
                self._offset += len(data)
                if size > MAX_BYTES:
                    bound_log(self._log_path)
                return data
            if size < self._offset:  # truncated by someone else: carry on from its new end
                self._offset = size
                continue
            if not self._alive():
                return b""
            assert self._follower is not None
            await self._follower.wait(ALIVE_CHECK_S)
        return b""

    async def _grows(self, fd: int, size: int, held_until: float) -> bool:
        """Whether the line read up to `size` is still being written: the file grows within `SETTLE_S`
        (woken by that write: its next bytes, the line's end among them, are read at once) and
        `held_until` has not passed (then read again: only that line is, never output read before it)."""
        assert self._follower is not None
        deadline = min(_now() + SETTLE_S, held_until)
        while not self._closed:
            if os.fstat(fd).st_size > size:
                return True
            if (left := deadline - _now()) <= 0:
                return False
            await self._follower.wait(left)
        return False

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise HypervisorError("console stream is closed")
        if self._input is None:
            self._input = _SharedInput.acquire(self._socket_path)
        await self._input.write(data)

    async def close(self) -> None:
        self._closed = True
        if self._input is not None:
            await self._input.release()
            self._input = None
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        if self._file is not None:
            os.close(self._file)
            self._file = None


class _SharedInput:
    """The one connection of this process to a console socket, shared by all its `SerialConsole`s.

    The hypervisor's console socket serves one client at a time, and several streams may be open on
    one VM at once (GetConsole, a WebSocket session, a re-adopting backend): they share this
    connection, held while any of them is open. Output the hypervisor echoes on it is drained and
    dropped (the log has it) so serial output never blocks on us. A write that finds the socket gone
    (the VM was cold-rebooted: a new process, a new socket) connects again once. Closing waits until
    the hypervisor has read what was sent (SIOCOUTQ = 0): QEMU reads a 16-byte UART FIFO at a time
    and drops the rest when the peer hangs up.
    """

    _open: dict[Path, _SharedInput] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.refs = 0
        self._lock = asyncio.Lock()
        self._writer: asyncio.StreamWriter | None = None
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    def acquire(cls, path: Path) -> _SharedInput:
        shared = cls._open.get(path) or cls._open.setdefault(path, cls(path))
        shared.refs += 1
        return shared

    async def write(self, data: bytes) -> None:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    writer = self._writer or await self._connect()
                    writer.write(data)
                    await writer.drain()
                    return
                except OSError as exc:
                    self._drop()
                    if attempt == 2:
                        raise HypervisorError(f"console write failed: {exc}") from exc

    async def _connect(self) -> asyncio.StreamWriter:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(self.path)), 5.0)
        except (OSError, TimeoutError) as exc:
            raise HypervisorError(f"cannot connect to console {self.path}: {exc}") from exc
        self._writer, self._drain = writer, asyncio.create_task(_discard(reader))
        return writer

    def _drop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
        if self._writer is not None:
            self._writer.close()
        self._writer = self._drain = None

    async def release(self) -> None:
        self.refs -= 1
        if self.refs > 0:
            return
        self._open.pop(self.path, None)
        async with self._lock:
            if self._writer is not None:
                await _flushed(self._writer, _FLUSH_WAIT_S)
            self._drop()


async def _flushed(writer: asyncio.StreamWriter, within_s: float) -> None:
    """Wait (bounded) until the peer has read everything sent on `writer`'s socket."""
    sock = writer.get_extra_info("socket")
    deadline = asyncio.get_running_loop().time() + within_s
    while sock is not None and asyncio.get_running_loop().time() < deadline:
        try:
            pending = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return
        if pending == 0:
            return
        await asyncio.sleep(_FLUSH_POLL_S)  # the kernel offers no event for "peer has read"


async def _discard(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(_CHUNK):
            pass
    except OSError:
        pass


class SocketStream:
    """A `ConsoleStream` over a unix socket both ways, e.g. QEMU's VNC server (raw RFB bytes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, path: Path, *, within_s: float = 5.0) -> SocketStream:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), within_s)
        except (OSError, TimeoutError) as exc:
            raise HypervisorError(f"cannot connect to {path}: {exc or type(exc).__name__}") from exc
        return cls(reader, writer)

    async def read(self) -> bytes:
        try:
            return await self._reader.read(_CHUNK)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise HypervisorError(f"console write failed: {exc}") from exc

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
