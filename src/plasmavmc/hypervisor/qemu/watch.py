"""Why a QEMU process exited: the exit watcher and the classification of an exit.

QEMU runs with `-action shutdown=pause`: when the guest powers off, QEMU does not exit but stops in
run state `shutdown`, holding on to the fact until someone who watches acknowledges it. The watcher
(one task per running VM, on the VM's second QMP monitor `qmp-events.sock`) registers for `SHUTDOWN`
events, then asks `query-status`; on a guest shutdown (event, or run state already `shutdown` — say the
agent was down when it happened) it writes the `guest-shutdown` (or `guest-panic`) marker and only then
sends `quit`. So the marker exists before the process exits, and an exit that happened while no agent
was running is still classified right once an agent re-adopts the VM and starts a watcher.

Markers hold the pid of the run they describe, so a marker left from an earlier run never explains a
later exit, and `start` does not need to clear anything (no race with a `wait_exit` of the previous
run during a cold reboot). Precedence when the process is gone: the agent's request (`stop-requested`)
> guest panic > guest power-off > otherwise CRASHED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.base import ExitReport
from plasmavmc.hypervisor.process import Process
from plasmavmc.hypervisor.qemu.qmp import QmpSession
from plasmavmc.hypervisor.qemu.runtime import GUEST_PANIC, GUEST_SHUTDOWN, STOP_REQUESTED, RuntimePaths
from plasmavmc.types.runtime import ExitKind

log = logging.getLogger(__name__)


def mark(paths: RuntimePaths, name: str, pid: int, reason: str = "") -> None:
    paths.set_marker(name, f"{pid} {reason}".strip())


def _marker_reason(paths: RuntimePaths, name: str, pid: int) -> str | None:
    """The reason recorded in marker `name` for run `pid`; None if there is none for this run."""
    try:
        text = paths.marker(name).read_text()
    except FileNotFoundError:
        return None
    marked_pid, _, reason = text.partition(" ")
    return reason if marked_pid == str(pid) else None


def classify(paths: RuntimePaths, pid: int | None) -> ExitReport:
    """The ExitReport for run `pid`, from the markers it left."""
    if pid is None:
        return ExitReport(ExitKind.CRASHED, "qemu is not running and left no pidfile")
    requested = _marker_reason(paths, STOP_REQUESTED, pid)
    if requested is not None:
        return ExitReport(ExitKind.REQUESTED, f"{requested or 'stop'} requested")
    if _marker_reason(paths, GUEST_PANIC, pid) is not None:
        return ExitReport(ExitKind.CRASHED, "guest kernel panicked")
    if _marker_reason(paths, GUEST_SHUTDOWN, pid) is not None:
        return ExitReport(ExitKind.GUEST_POWEROFF, "the guest powered off")
    return ExitReport(ExitKind.CRASHED, f"qemu process {pid} exited unexpectedly")


async def watch(paths: RuntimePaths, process: Process) -> None:
    """Hold the events monitor of a running VM until QEMU exits; record a guest shutdown and quit QEMU."""
    exited = asyncio.ensure_future(process.wait())
    try:
        async with QmpSession(paths.qmp_events) as qmp:
            with qmp.listen("SHUTDOWN") as listener:
                state = (await qmp.execute("query-status"))["status"]
                if state != "shutdown":
                    event = asyncio.ensure_future(listener.get())
                    await asyncio.wait({exited, event}, return_when=asyncio.FIRST_COMPLETED)
                    if not event.done():
                        event.cancel()
                        return  # QEMU is gone: nothing to acknowledge
                    data = event.result().get("data")
                    data = data if isinstance(data, dict) else {}
                    if not data.get("guest", False):
                        return  # a host-side shutdown (signal, quit): QEMU exits by itself
                    reason = str(data.get("reason", "guest-shutdown"))
                else:
                    reason = "guest-shutdown"  # it happened while nobody watched
                mark(paths, GUEST_PANIC if reason == "guest-panic" else GUEST_SHUTDOWN, process.pid, reason)
                await qmp.quit()
    except HypervisorError as exc:
        if process.alive():
            log.warning("exit watcher of %s: %s", paths.root.name, exc)
    finally:
        exited.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await exited
