"""`hypervisor/sched.py`: the threads of a process at a nice, or (those of a name) at a scheduler slice,
threads made later inheriting both; a bad slice refused, a process gone skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plasmavmc.hypervisor import sched

DEADLINE_S = 10.0
# the child names one thread "worker" and starts it at once, and starts another ("later", made by the
# worker) on a line on its stdin: one made after the call, by a thread the call set
CHILD = """
import ctypes, sys, threading, time
def name(title):
    ctypes.CDLL(None).prctl(15, title.encode(), 0, 0, 0)  # PR_SET_NAME
def later():
    name("later")
    time.sleep(60)
def worker():
    name("worker")
    sys.stdin.readline()
    threading.Thread(target=later, daemon=True).start()
    time.sleep(60)
threading.Thread(target=worker, daemon=True).start()
time.sleep(60)
"""


def slice_of(pid: int, tid: int) -> int | None:
    """A thread's scheduler slice in ns (`se.slice` of /proc/<pid>/task/<tid>/sched), or None when the
    kernel does not say it (before Linux 6.12: no custom slices)."""
    for line in Path(f"/proc/{pid}/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


def wait_threads(pid: int, prefix: str, count: int) -> list[int]:
    deadline = time.monotonic() + DEADLINE_S
    while len(tids := sched.threads(pid, prefix)) < count:  # poll-with-deadline: the child's threads start
        assert time.monotonic() < deadline, f"the child has {len(tids)} threads named {prefix!r}, not {count}"
        time.sleep(0.01)
    return tids


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
    try:
        wait_threads(proc.pid, "worker", 1)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_threads_by_name(child: subprocess.Popen[bytes]) -> None:
    everyone = sched.threads(child.pid)
    assert child.pid in everyone and len(everyone) == 2
    assert sched.threads(child.pid, "work") == [tid for tid in everyone if tid != child.pid]


def test_the_named_threads_and_theirs_get_the_slice(child: subprocess.Popen[bytes]) -> None:
    if (default := slice_of(os.getpid(), os.getpid())) is None:
        pytest.skip("this kernel has no custom scheduler slices (Linux 6.12 and later): se.slice not shown")
    assert default != sched.MIN_SLICE_NS, "this process has the slice already: nothing would be seen"
    (worker,) = sched.threads(child.pid, "worker")
    os.setpriority(os.PRIO_PROCESS, worker, 3)
    sched.set_slice(child.pid, sched.MIN_SLICE_NS, "worker")
    assert slice_of(child.pid, worker) == sched.MIN_SLICE_NS
    assert os.getpriority(os.PRIO_PROCESS, worker) == 3, "the slice keeps the thread's nice"
    assert slice_of(child.pid, child.pid) == default, "a thread of another name is left alone"
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    (later,) = wait_threads(child.pid, "later", 1)
    assert slice_of(child.pid, later) == sched.MIN_SLICE_NS  # inherited from the worker that made it
    sched.set_slice(child.pid, sched.MAX_SLICE_NS)
    assert {slice_of(child.pid, tid) for tid in sched.threads(child.pid)} == {sched.MAX_SLICE_NS}


def test_every_thread_gets_the_nice(child: subprocess.Popen[bytes]) -> None:
    before = {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)}
    sched.set_nice(child.pid, 4)
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in sched.threads(child.pid)} == {4}
    assert {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)} == before, "the nice keeps the slice"


def test_a_slice_out_of_the_kernels_bounds_is_refused(child: subprocess.Popen[bytes]) -> None:
    before = {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)}
    for bad in (sched.MIN_SLICE_NS - 1, sched.MAX_SLICE_NS + 1, 0, -5):
        with pytest.raises(ValueError, match="slice"):
            sched.set_slice(child.pid, bad)
    assert {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)} == before, "changed nothing"


def test_a_process_gone_is_skipped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert sched.threads(proc.pid) == []
    sched.set_nice(proc.pid, 5)  # nothing to set, no error
    sched.set_slice(proc.pid, sched.MIN_SLICE_NS)
