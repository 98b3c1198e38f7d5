"""Per-thread CPU scheduling of a hypervisor's process: its threads' nice and, on Linux 6.12 and later
(EEVDF), their scheduler slice, through `sched_setattr(2)` (libc's `syscall`, ctypes).

Why a slice: a guest that keeps its vCPU busy (the test guest polls its UART) holds one CPU. A thread of
the control plane (a gRPC poller of the agent, the server or a client) woken onto that CPU has to wait
until the scheduler takes the CPU from the vCPU, and the kernel protects a running task for its whole
slice (`RUN_TO_PARITY`), 1.4 ms by default on this machine. A scheduler trace of RunVms showed the
client's wake-up to the guest's line queued behind the vCPU thread for 1.0 ms while the other CPU
idled. With the vCPU's slice at the kernel's shortest, 0.1 ms, a wake-up there takes the CPU about
that soon (RunVm to the guest's line 0.5 ms sooner in each of two same-minutes A/B runs of 200). The
vCPUs' (`firecracker/launch.set_vcpu_slice`): they are what keeps a CPU busy; they get it from the
VMM thread that makes them (`set_thread_slice` on it; a thread inherits its maker's slice), so nothing
is set between the boot and the guest's first output. The API thread keeps the default; every
thread at the short slice measured the same (in A/B, vCPUs only against every thread: 0.1, 0.5 and
0.2 ms sooner).

A kernel without custom slices (before 6.12) has no use for the slice: it ignores it, and a call it
refuses (as a sandbox without the syscall would) is logged once, the threads keeping what they had:
the slice only shortens waits, nothing depends on it. A thread gone meanwhile is skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import platform
import struct

log = logging.getLogger(__name__)

MIN_SLICE_NS = 100_000  # the kernel's bounds for a custom slice (`sched_attr.sched_runtime`, SCHED_OTHER)
MAX_SLICE_NS = 100_000_000
_SCHED_OTHER = 0
_ATTR = struct.Struct("IIQiIQQQ")  # size, policy, flags, nice, priority, runtime, deadline, period (VER0)
_SYSCALL = {"x86_64": 314, "aarch64": 274}.get(platform.machine())  # __NR_sched_setattr
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_warned: set[int] = set()


def threads(pid: int, prefix: str = "") -> list[int]:
    """Every thread id of process `pid` (with `prefix`: those whose name starts with it); none when it
    has exited."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []
    return [tid for tid in tids if not prefix or _name(pid, tid).startswith(prefix)]


def set_nice(pid: int, nice: int) -> None:
    """Every thread of `pid` at `nice`; threads and children made later inherit it."""
    for tid in threads(pid):
        with contextlib.suppress(ProcessLookupError):
            os.setpriority(os.PRIO_PROCESS, tid, nice)


def set_slice(pid: int, slice_ns: int, prefix: str = "") -> None:
    """The threads of `pid` (with `prefix`: those whose name starts with it) at scheduler slice
    `slice_ns` (`MIN_SLICE_NS`-`MAX_SLICE_NS`), each at its own nice; threads they make inherit it."""
    _check(slice_ns)
    for tid in threads(pid, prefix):
        set_thread_slice(tid, slice_ns)


def set_thread_slice(tid: int, slice_ns: int) -> None:
    """Thread `tid` alone at scheduler slice `slice_ns`, at its own nice; threads it makes inherit it."""
    _check(slice_ns)
    with contextlib.suppress(ProcessLookupError):
        _set_slice(tid, os.getpriority(os.PRIO_PROCESS, tid), slice_ns)


def _check(slice_ns: int) -> None:
    if not MIN_SLICE_NS <= slice_ns <= MAX_SLICE_NS:
        raise ValueError(f"slice of {slice_ns} ns: expected {MIN_SLICE_NS} to {MAX_SLICE_NS}")


def _name(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/comm", "rb") as comm:
            return comm.read().decode(errors="replace").rstrip("\n")
    except OSError:
        return ""


def _set_slice(tid: int, nice: int, slice_ns: int) -> None:
    if _SYSCALL is None:
        return
    attr = ctypes.create_string_buffer(_ATTR.pack(_ATTR.size, _SCHED_OTHER, 0, nice, 0, slice_ns, 0, 0))
    if _libc.syscall(_SYSCALL, tid, attr, 0) == 0:
        return
    code = ctypes.get_errno()
    if code == errno.ESRCH:
        raise ProcessLookupError(code, os.strerror(code))
    if code not in _warned:
        _warned.add(code)
        log.warning("cannot set a hypervisor thread's scheduler slice (%s): it keeps the kernel's default",
                    os.strerror(code))
