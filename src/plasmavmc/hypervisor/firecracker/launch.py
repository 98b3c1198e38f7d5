"""Starting a Firecracker process detached, finding it again, and saying why it exited.

The process's stdin is the VM's `console.in` FIFO (opened read-write, so it never reads EOF however
many agents come and go) and its stdout appends to `console.log`: that is Firecracker's serial port.
Unjailed, we start `firecracker` ourselves in its own session and write its pidfile; jailed, the
jailer forks it into a new PID namespace, writes the pidfile and exits (we await that exit). Either way
the pid is then opened through `hypervisor/process.py` with the VM id as the pid-reuse marker (it is
Firecracker's `--id`).

Why a run ended, when no marker says the agent asked: Firecracker exits with status 0 both when the
guest resets through the i8042 (its power-off) and on some faults, and a non-child's status cannot be
read anyway, so the run's part of `firecracker.log` (from the offset recorded at start) decides: an
error or fault line, or no clean-exit line at all (killed), means CRASHED; a clean exit, GUEST_POWEROFF.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor import sched
from plasmavmc.hypervisor.base import ExitReport
from plasmavmc.hypervisor.common import stop_reason, write_atomic
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.process import Process, open_process, read_pidfile, tail
from plasmavmc.types.runtime import ExitKind

JAILER_TIMEOUT_S = 30.0
CLEAN_EXIT = "exiting successfully"
FAULTS = ("KVM_EXIT_INTERNAL_ERROR", "exiting with error", "panicked", "Shutting down VM after intercepting")


def ensure_fifo(path: Path) -> None:
    try:
        if not stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()
            os.mkfifo(path, 0o600)
    except FileNotFoundError:
        os.mkfifo(path, 0o600)


async def launch(argv: Sequence[str], paths: FcPaths, *, jailed: bool, low_priority: bool = False) -> None:
    """Start Firecracker (directly or through the jailer); on return its pidfile names it. `low_priority`:
    the launch runs at the lowest CPU priority (see `set_low_priority`)."""
    ensure_fifo(paths.console_in)
    proc = await asyncio.to_thread(_spawn, argv, paths)  # a fork and exec: 5-15 ms the loop does not wait
    if low_priority:
        set_low_priority(proc.pid)
    if not jailed:
        write_atomic(paths.pidfile, str(proc.pid).encode(), durable=False)  # names a process: no fsync
        return
    try:
        code = await asyncio.to_thread(proc.wait, JAILER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        raise HypervisorError(f"jailer did not finish in {JAILER_TIMEOUT_S:.0f}s") from exc
    if code != 0 or read_pidfile(paths.pidfile) is None:
        raise HypervisorError(f"jailer failed (exit {code}): {tail(paths.launch_log)}")


def _spawn(argv: Sequence[str], paths: FcPaths) -> subprocess.Popen[bytes]:
    """fork+exec in a new session, stdio on the console FIFO, console log and launch log.

    A plain `Popen`, not an asyncio subprocess: closing (or collecting) an asyncio subprocess transport
    kills a child that still runs, and Firecracker must outlive this agent. A `Popen` that is collected
    while its child runs is reaped later by the subprocess module; after an agent exit, by init.
    """
    with contextlib.ExitStack() as stack:
        stdin = os.open(paths.console_in, os.O_RDWR)
        stack.callback(os.close, stdin)
        stdout = os.open(paths.console_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        stack.callback(os.close, stdout)
        stderr = os.open(paths.launch_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        stack.callback(os.close, stderr)
        try:
            return subprocess.Popen(list(argv), cwd=paths.guest, stdin=stdin, stdout=stdout, stderr=stderr,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            raise HypervisorError(f"cannot execute {argv[0]}: {exc}") from exc


LOW_PRIORITY_NICE = 19
VCPU_THREAD = "fc_vcpu"  # the name Firecracker gives each vCPU thread, then its index


def set_low_priority(pid: int) -> None:
    """Every thread of `pid` at nice `LOW_PRIORITY_NICE` (the smallest CPU share): a warm pool's launch
    (`pool.py`), so that the jailer and exec yield the CPU to a create's answer and to running guests.
    Nice, not `SCHED_IDLE`: on a node whose guests keep every CPU busy an idle-class launch would hardly
    run at all and the pool would not refill. Set just after the exec: threads and children made before
    that (a race lost) keep the inherited nice, which is harmless until `set_guest_priority`."""
    sched.set_nice(pid, LOW_PRIORITY_NICE)


def set_guest_priority(pid: int) -> None:
    """Every thread of `pid` at this process's own nice (what a launch inherits; back from
    `set_low_priority`): set once its API answers (`Launcher.exec`), so the threads Firecracker makes
    later, the vCPUs among them, inherit it. A pool's entry gets it while it waits idle, not at its boot:
    a process whose threads went from nice 19 to the agent's just before its boot booted 2-4 ms slower
    than raw Firecracker."""
    sched.set_nice(pid, os.getpriority(os.PRIO_PROCESS, 0))


def set_vcpu_slice(pid: int, slice_ns: int) -> None:
    """The vCPU threads of `pid` (Firecracker names them `fc_vcpu <n>`) at scheduler slice `slice_ns`
    (`hypervisor/sched.py`; 0: left at the kernel's default), and its VMM thread (the main one, whose
    thread id is the pid), which makes the vCPU threads: those it makes later (at a boot over the API,
    at a snapshot's load) inherit the slice from their first instruction, with no call of ours between
    the boot and the guest's first output. Set when its API answers (`Launcher.exec`)."""
    if slice_ns:
        sched.set_thread_slice(pid, slice_ns)
        sched.set_slice(pid, slice_ns, VCPU_THREAD)


def running(paths: FcPaths, vm_id: str) -> Process | None:
    """The VM's Firecracker, verified against pid reuse; None when it does not run."""
    pid = read_pidfile(paths.pidfile)
    return open_process(pid, vm_id) if pid is not None else None


def classify(paths: FcPaths, pid: int | None, log_offset: int) -> ExitReport:
    if pid is None:
        return ExitReport(ExitKind.CRASHED, "firecracker is not running and left no pidfile")
    if (reason := stop_reason(paths.stop_marker, pid)) is not None:
        return ExitReport(ExitKind.REQUESTED, f"{reason} requested")
    log = _log_since(paths.log, log_offset)
    for fault in FAULTS:
        if fault in log:
            return ExitReport(ExitKind.CRASHED, f"firecracker {pid} failed: {_line_with(log, fault)}")
    if CLEAN_EXIT in log:
        return ExitReport(ExitKind.GUEST_POWEROFF, "the guest powered off (i8042 reset)")
    return ExitReport(ExitKind.CRASHED, f"firecracker process {pid} exited unexpectedly")


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _line_with(text: str, needle: str) -> str:
    return next((line.strip() for line in text.splitlines() if needle in line), needle)[-300:]
