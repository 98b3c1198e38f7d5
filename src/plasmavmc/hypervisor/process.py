"""Hypervisor processes as the agent sees them: launched detached, found again by pidfile, awaited, killed.

Shared by every backend. A hypervisor process outlives the agent (DESIGN "Processes outlive the agent"),
so it is never our child for long: it runs in its own session, and an agent that restarts finds it again
through a pidfile. Two consequences shape this module:

* A pid read from a pidfile may have been reused by an unrelated process after a host or agent restart,
  so `open_process` only hands out a `pidfd` for a pid whose `/proc/<pid>/cmdline` contains a marker
  unique to the VM (its runtime dir). Signals then go through the pidfd, which names that exact process
  even if the pid is reused later. A process found to match is known from then on by its pid and start
  time (unique together): its cmdline is not read again. Reading it takes the process's memory lock, and
  a VM building its memory (a boot, a snapshot's load) holds that lock for up to ~5 ms here, which the
  agent's event loop would wait out at each status, supervision and console look right after a start.
* A non-child cannot be `waitpid`-ed. `wait_exit` awaits it with `os.pidfd_open` + `loop.add_reader`
  (the pidfd turns readable when the process exits): no polling. Only where pidfd is unavailable
  (kernel < 5.3) does it fall back to checking `/proc` every 50 ms.

Every argv is a list; nothing here ever goes through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from plasmavmc import fdwait
from plasmavmc.errors import HypervisorError

log = logging.getLogger(__name__)

_POLL_FALLBACK_S = 0.05
_EXEC_RETRIES = 50
_STARTTIME = 19  # /proc/<pid>/stat field 22 (start time, in clock ticks since boot), as `_stat` indexes it
_MATCHED_MAX = 4096  # (pid, start time, marker) kept as matched; the table starts over when it is full
_matched: set[tuple[int, str, str]] = set()
_PF_EXITING = 0x4  # /proc/<pid>/stat flags (field 9): the process is in exit


@dataclass(frozen=True)
class DaemonResult:
    """What the foreground parent of a self-daemonizing program (e.g. `qemu -daemonize`) left behind."""

    returncode: int
    stderr: str


def launch_detached(argv: Sequence[str], *, cwd: Path, stdout: Path | None, stderr: Path | None,
                    env: Mapping[str, str] | None = None) -> int:
    """Start `argv` in its own session with stdin from /dev/null and output to files; return its pid.
    `env` replaces the child's environment (None: the agent's own).

    The child is ours until it exits; a backend that must survive an agent restart records the pid in a
    pidfile and finds it again with `open_process`.
    """
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(stdout, "ab")) if stdout else subprocess.DEVNULL
        err = stack.enter_context(open(stderr, "ab")) if stderr else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True, close_fds=True, env=env,
            )
        except OSError as exc:
            raise HypervisorError(f"cannot execute {argv[0]}: {exc}") from exc
    return proc.pid


async def run_daemonizing(argv: Sequence[str], *, cwd: Path, within_s: float) -> DaemonResult:
    """Run a program that forks a daemon and exits once the daemon is set up; return the parent's result.

    The parent's exit is the sync point: errors found before the daemon detaches arrive on its stderr,
    which is captured here for the caller's error message.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        raise HypervisorError(f"cannot execute {argv[0]}: {exc}") from exc
    try:
        _, err = await asyncio.wait_for(proc.communicate(), within_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise HypervisorError(f"{argv[0]} did not finish starting within {within_s:.0f}s") from exc
    assert proc.returncode is not None
    return DaemonResult(proc.returncode, err.decode(errors="replace").strip())


def read_pidfile(path: Path) -> int | None:
    """The pid in `path`, or None when the file is missing, empty or not a positive number."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise HypervisorError(f"cannot read pidfile {path}: {exc}") from exc
    return int(text) if text.isdigit() and int(text) > 0 else None


def cmdline_of(pid: int) -> list[str] | None:
    """The argv of `pid` from /proc, or None if there is no such (non-zombie) process."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:  # zombies and kernel threads have an empty cmdline
        return None
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def _stat(pid: int) -> list[str]:
    """`/proc/<pid>/stat` from its state on (the fields after the command name, which may itself contain
    ")"); [] when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return stat[stat.rfind(")") + 2 :].split()


def _live(fields: list[str]) -> bool:
    return bool(fields) and fields[0] not in ("Z", "X")


def _exiting(fields: list[str]) -> bool:
    return len(fields) > 6 and int(fields[6]) & _PF_EXITING != 0


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    return _live(_stat(pid))


def is_exiting(pid: int) -> bool:
    """True while `pid` tears itself down (PF_EXITING): its memory, its cmdline with it, is going; for a
    hypervisor with gigabytes of guest memory that takes ~50 ms a GiB here, before it turns zombie."""
    return _exiting(_stat(pid))


def matches(pid: int, marker: str) -> bool:
    """True when `pid` is alive and one of its argv elements contains `marker` (the pid-reuse guard); once
    true, true for that pid and start time without reading its argv again."""
    fields = _stat(pid)
    steady = len(fields) > _STARTTIME and _live(fields) and not _exiting(fields)  # (exiting: no longer ours)
    known = (pid, fields[_STARTTIME], marker) if steady else None
    if known is not None and known in _matched:
        return True
    found = _argv_matches(pid, marker)
    if found and known is not None:
        if len(_matched) >= _MATCHED_MAX:
            _matched.clear()
        _matched.add(known)
    return found


def _argv_matches(pid: int, marker: str) -> bool:
    argv = cmdline_of(pid)
    # A process caught in the middle of exec briefly shows an empty cmdline: give it a few ms. One that is
    # exiting shows none either, for as long as its memory takes to free: it is no longer ours to find.
    for _ in range(_EXEC_RETRIES):
        if argv is not None:
            break
        fields = _stat(pid)
        if not _live(fields) or _exiting(fields):
            break
        time.sleep(0.002)
        argv = cmdline_of(pid)
    return argv is not None and any(marker in arg for arg in argv)


class Process:
    """A verified handle on a running process: signals and waits go through a pidfd when available."""

    def __init__(self, pid: int, pidfd: int | None) -> None:
        self.pid = pid
        self._pidfd = pidfd

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def alive(self) -> bool:
        return is_running(self.pid)

    def send_signal(self, sig: int) -> None:
        """Signal the process; a process that already exited is not an error."""
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            raise HypervisorError(f"cannot signal process {self.pid}: {exc}") from exc

    async def wait(self, within_s: float | None = None) -> bool:
        """Wait for the process to exit; True if it did, False if `within_s` seconds passed first."""
        try:
            await asyncio.wait_for(self._wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def _wait(self) -> None:
        if self._pidfd is None:
            while self.alive():
                await asyncio.sleep(_POLL_FALLBACK_S)
            return
        await fdwait.readable(self._pidfd)  # a pidfd turns readable when its process exits

    async def terminate(self, grace_s: float, sig: int = signal.SIGTERM) -> None:
        """Send `sig`, wait up to `grace_s` seconds, then SIGKILL and wait for the exit."""
        self.send_signal(sig)
        await self.wait_or_kill(grace_s, f"process {self.pid} (signal {sig})")

    async def wait_or_kill(self, grace_s: float, what: str) -> bool:
        """Wait up to `grace_s` for a graceful exit; else log the forced kill and SIGKILL. True if graceful."""
        if await self.wait(grace_s):
            return True
        log.warning("%s: still running %gs after the graceful stop request; killing it (SIGKILL)", what, grace_s)
        await self.kill()
        return False

    async def kill(self, within_s: float = 10.0) -> None:
        self.send_signal(signal.SIGKILL)
        if not await self.wait(within_s):
            raise HypervisorError(f"process {self.pid} survived SIGKILL for {within_s:.0f}s")


def open_process(pid: int, marker: str) -> Process | None:
    """A `Process` for `pid` if it is running and is ours (argv contains `marker`); else None.

    The pidfd is opened before the check, so the check and every later signal refer to the same process.
    """
    pidfd: int | None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except (OSError, AttributeError):
        pidfd = None  # no pidfd support: fall back to plain pids and /proc polling
    if not matches(pid, marker) or not is_running(pid):
        if pidfd is not None:
            os.close(pidfd)
        return None
    return Process(pid, pidfd)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time `pid` has used, from /proc/<pid>/stat; None if it is gone."""
    fields = _stat(pid)
    if not fields:
        return None
    # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tail(path: Path, size: int = 1500) -> str:
    """The last `size` bytes of a process's log file as text, for error messages ("no error output")."""
    try:
        with open(path, "rb") as f:
            f.seek(max(os.fstat(f.fileno()).st_size - size, 0))
            return f.read().decode(errors="replace").strip() or "no error output"
    except OSError:
        return "no error output"
