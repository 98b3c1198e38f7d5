"""The provider's helper daemons (dnsmasq): started self-daemonizing, found again by pidfile, stopped.

A pid read back from a pidfile may belong to another process after a reboot or pid reuse, so a pid is
trusted only while its argv contains the daemon's marker (its state dir). Stopping goes through a pidfd
(the exact process, readable once it exits), awaited with `fdwait.readable`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.errors import PlasmaError
from plasmavmc.fdwait import readable
from plasmavmc.network.bridge import command


class DaemonFailed(PlasmaError):
    """A helper daemon could not be started or stopped."""


def running_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in `pidfile` if that process runs and its argv contains `marker`; else None."""
    try:
        text = pidfile.read_text().strip()
        argv = Path(f"/proc/{int(text)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return int(text) if any(marker.encode() in arg for arg in argv) else None


async def start(argv: Sequence[str], cwd: Path, within_s: float = 30.0) -> None:
    """Run a self-daemonizing program; its foreground parent's exit (and stderr) is the sync point."""
    code, err = await command.run(argv, cwd=cwd, within_s=within_s)
    if code != 0:
        raise DaemonFailed(f"{argv[0]} failed: {err[:500]}")


def signal_daemon(pidfile: Path, marker: str, sig: int) -> bool:
    """Send `sig` to the daemon; False when it is not running."""
    pid = running_pid(pidfile, marker)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return True


async def stop(pidfile: Path, marker: str, within_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `within_s`; returns once the process is gone."""
    pid = running_pid(pidfile, marker)
    if pid is None:
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            if await readable(fd, within_s):
                return
        raise DaemonFailed(f"process {pid} survived SIGKILL")
    finally:
        os.close(fd)
