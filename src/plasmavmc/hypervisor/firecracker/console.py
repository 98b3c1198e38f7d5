"""The serial console of a Firecracker VM: output replayed and followed from `console.log` by the
shared `SerialConsole`, input written to the `console.in` FIFO that is Firecracker's stdin.

Firecracker's serial port is its stdin/stdout (it has no console socket), so only the write side
differs from QEMU's: a FIFO, opened non-blocking for writing; a full FIFO (the guest not reading)
makes `write` wait rather than block the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.console import SerialConsole

_RETRY_S = 0.01
_WRITE_TIMEOUT_S = 10.0


class FifoConsole:
    """A `ConsoleStream` over the console log (output) and the console FIFO (input)."""

    def __init__(self, log_path: Path, fifo_path: Path, alive: Callable[[], bool]) -> None:
        # The socket path is never connected to: writes go to the FIFO.
        self._output = SerialConsole(log_path, fifo_path.with_name(".no-console-socket"), alive)
        self._fifo_path = fifo_path
        self._fd: int | None = None

    async def read(self) -> bytes:
        return await self._output.read()

    async def write(self, data: bytes) -> None:
        fd = self._open()
        view = memoryview(data)
        deadline = asyncio.get_running_loop().time() + _WRITE_TIMEOUT_S
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                if asyncio.get_running_loop().time() > deadline:
                    raise HypervisorError("console input not consumed by the guest") from None
                await asyncio.sleep(_RETRY_S)  # poll-with-deadline: the FIFO is full
            except OSError as exc:
                raise HypervisorError(f"console write failed: {exc}") from exc

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self._fifo_path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody has it open for reading, the VM is not running
                raise HypervisorError(f"console input {self._fifo_path} unavailable: {exc}") from exc
        return self._fd

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        await self._output.close()
