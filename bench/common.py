"""Shared by the benchmarks in bench/: medians, a monotonic timer, and printing the result as JSON.

Every benchmark prints exactly one JSON document on stdout: its name, the machine it ran on, its
figures, and — where a baseline was measured in the same run — the ratio to it.
"""

from __future__ import annotations

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
