"""`hypervisor/sched.py`: every thread of a process at a nice and a scheduler slice, threads made later
inheriting both; a bad slice refused, a process gone skipped."""

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
# the child starts one thread at once and another on a line on its stdin: one made after the call
CHILD = """
import sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
sys.stdin.readline()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
time.sleep(60)
"""


def slice_of(pid: int, tid: int) -> int | None:
    """A thread's scheduler slice in ns (`se.slice` of /proc/<pid>/task/<tid>/sched), or None when the
    kernel does not say it (before Linux 6.12: no custom slices)."""
    for line in Path(f"/proc/{pid}/task/{tid}/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


def wait_threads(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + DEADLINE_S
    while len(tids := sched.threads(pid)) < count:  # poll-with-deadline: the child's threads start
        assert time.monotonic() < deadline, f"the child has {len(tids)} threads, not {count}"
        time.sleep(0.01)
    return tids


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
    try:
        wait_threads(proc.pid, 2)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_every_thread_and_later_ones_get_the_nice_and_slice(child: subprocess.Popen[bytes]) -> None:
    if slice_of(os.getpid(), os.getpid()) is None:
        pytest.skip("this kernel has no custom scheduler slices (Linux 6.12 and later): se.slice not shown")
    before = {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)}
    assert sched.MIN_SLICE_NS not in before.values(), "the child starts with the slice already: nothing seen"
    sched.set_threads(child.pid, 3, sched.MIN_SLICE_NS)
    tids = sched.threads(child.pid)
    assert {slice_of(child.pid, tid) for tid in tids} == {sched.MIN_SLICE_NS}
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in tids} == {3}
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.flush()
    later = [tid for tid in wait_threads(child.pid, 3) if tid not in tids]
    assert [slice_of(child.pid, tid) for tid in later] == [sched.MIN_SLICE_NS]  # inherited
    assert [os.getpriority(os.PRIO_PROCESS, tid) for tid in later] == [3]


def test_nice_alone_leaves_the_slice(child: subprocess.Popen[bytes]) -> None:
    before = {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)}
    sched.set_threads(child.pid, 4)
    assert {tid: slice_of(child.pid, tid) for tid in sched.threads(child.pid)} == before
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in sched.threads(child.pid)} == {4}


def test_a_slice_out_of_the_kernels_bounds_is_refused(child: subprocess.Popen[bytes]) -> None:
    for bad in (sched.MIN_SLICE_NS - 1, sched.MAX_SLICE_NS + 1, -5):
        with pytest.raises(ValueError, match="slice"):
            sched.set_threads(child.pid, 0, bad)
    own = os.getpriority(os.PRIO_PROCESS, 0)  # what the child inherited
    assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in sched.threads(child.pid)} == {own}, "changed nothing"


def test_a_process_gone_is_skipped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert sched.threads(proc.pid) == []
    sched.set_threads(proc.pid, 5, sched.MIN_SLICE_NS)  # nothing to set, no error
