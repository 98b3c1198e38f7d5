"""A thin async use of `qemu.qmp.QMPClient`: connect with a timeout, execute, listen, disconnect.

A QMP monitor serves one client at a time (a second connection waits, greeting-less, until the first
leaves), so callers connect per operation and disconnect at once; the long-lived event listener of the
exit watcher uses a monitor of its own. Every `qemu.qmp` error, OS error and timeout leaves this module
as a `HypervisorError` (`raise ... from exc`).

Commands used (QEMU 7.2 QMP reference): `query-status` -> {"status": RunState, "running": bool},
`system_powerdown` (ACPI power button), `system_reset`, `quit`; event `SHUTDOWN`
{"guest": bool, "reason": ShutdownCause} e.g. "guest-shutdown", "guest-panic", "host-signal".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from qemu.qmp import EventListener, ExecInterruptedError, QMPClient, QMPError

from plasmavmc.errors import HypervisorError

CONNECT_TIMEOUT_S = 5.0
EXECUTE_TIMEOUT_S = 10.0


class QmpSession:
    """`async with QmpSession(path) as qmp: await qmp.execute("query-status")`."""

    def __init__(self, path: Path, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self._path = path
        self._timeout = timeout
        self._client = QMPClient(f"plasmavmc:{path.parent.name}")

    async def __aenter__(self) -> QmpSession:
        try:
            await asyncio.wait_for(self._client.connect(str(self._path)), self._timeout)
        except (QMPError, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise HypervisorError(f"cannot connect to QMP {self._path}: {exc or type(exc).__name__}") from exc
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._disconnect()

    async def _disconnect(self) -> None:
        # The server may already be gone (after `quit`); a hang-up surfaces here and means nothing.
        with contextlib.suppress(QMPError, OSError, EOFError):
            await self._client.disconnect()

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None,
                      *, within_s: float = EXECUTE_TIMEOUT_S) -> Any:
        try:
            args = dict(arguments) if arguments is not None else None
            return await asyncio.wait_for(self._client.execute(command, args), within_s)
        except (QMPError, OSError, EOFError, TimeoutError) as exc:
            raise HypervisorError(f"QMP {command} failed: {exc or type(exc).__name__}") from exc

    async def quit(self) -> None:
        """Ask QEMU to exit; it may hang up before it answers, which is success too."""
        with contextlib.suppress(ExecInterruptedError, EOFError, OSError):
            try:
                await asyncio.wait_for(self._client.execute("quit"), EXECUTE_TIMEOUT_S)
            except (QMPError, TimeoutError) as exc:
                raise HypervisorError(f"QMP quit failed: {exc or type(exc).__name__}") from exc

    @contextlib.contextmanager
    def listen(self, *names: str) -> Iterator[EventListener]:
        """Receive the named events from now on (register before querying state, so none is missed)."""
        listener = EventListener(names)
        with self._client.listen(listener):
            yield listener


async def execute(path: Path, command: str, arguments: Mapping[str, object] | None = None,
                  *, within_s: float = EXECUTE_TIMEOUT_S) -> Any:
    """Connect, run one command, disconnect."""
    async with QmpSession(path) as qmp:
        return await qmp.execute(command, arguments, within_s=within_s)


async def run_state(path: Path) -> str:
    """QEMU's RunState ("running", "paused", "shutdown", ...) via `query-status`."""
    reply = await execute(path, "query-status")
    return str(reply["status"])
