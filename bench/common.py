"""Shared by the benchmarks in bench/: medians, a monotonic timer, waiting for processes to be idle, and
printing the result as JSON.

Every benchmark prints exactly one JSON document on stdout: its name, the machine it ran on, its
figures, and — where a baseline was measured in the same run — the ratio to it.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...` then `t[0]` holds the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def cpu_ns(pid: int) -> int:
    """The CPU time all threads of `pid` have run, in ns (the scheduler's own account,
    `/proc/PID/task/*/schedstat`: exact where /proc/PID/stat counts 10 ms ticks); 0 once it is gone."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


async def idle(pids: list[int], *, window_s: float = 0.02, below_s: float = 0.0005, within_s: float = 5.0) -> bool:
    """Until the processes `pids` together ran less than `below_s` of CPU in one `window_s` (an idle node:
    what the previous step left running — a delete's clean-up, a warm pool's refill — is over), at most
    `within_s`; whether they got there. A timed step that starts on an idle node is measured as its
    baseline is, on an idle host."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = sum(cpu_ns(pid) for pid in pids)
        await asyncio.sleep(window_s)  # poll-with-deadline: the CPU spent over each window
        if sum(cpu_ns(pid) for pid in pids) - before < below_s * 1e9:
            return True
    return False


def compiled() -> None:
    """Byte-compile the plasmavmc package, as an installed one is: the servers and agents a benchmark starts
    then load bytecode instead of compiling every module at each start (an environment with
    PYTHONDONTWRITEBYTECODE never writes it itself, and a restart measured that way was a second slower)."""
    import compileall

    import plasmavmc

    compileall.compile_dir(os.path.dirname(plasmavmc.__file__), quiet=1)


def emit(name: str, **figures: Any) -> None:
    doc = {
        "benchmark": name,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        **figures,
    }
    print(json.dumps(doc, indent=2, sort_keys=False))
