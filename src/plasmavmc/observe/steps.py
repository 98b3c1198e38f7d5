"""`Steps`: where one operation spends its time, step by step, as one log line.

A create+start logs, per VM, on the server (`server steps`: checks, claim, agent, recorded, lease
end), on the agent (`create+start steps`: prepared, backend, status) and, from the Firecracker
warm pool, in the backend (`pooled backend steps: dir 0.41 ms, files 1.02 ms, limits 0.38 ms, boot
10.30 ms, output 0.90 ms, flush 1.60 ms, recorded 0.35 ms`); `bench.firecracker_bench` collects these
lines from the logs (`parse`). The durations are wall-clock (`perf_counter`) between consecutive steps:
what a step waits for (a thread, a commit, the other process's answer) is in it.
"""

from __future__ import annotations

import re
import time


class Steps:
    """Consecutive steps, each timed from the end of the previous one (or from the creation)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.took: list[tuple[str, float]] = []

    def done(self, name: str) -> None:
        """The step `name` ended now."""
        now = time.perf_counter()
        self.took.append((name, now - self._last))
        self._last = now

    def line(self, what: str) -> str:
        """`<what>: a 1.00 ms, b 2.50 ms` (`parse` reads it back)."""
        return f"{what}: " + ", ".join(f"{name} {s * 1000:.2f} ms" for name, s in self.took)


def parse(line: str, what: str) -> dict[str, float] | None:
    """Seconds by step of a `Steps.line(...what)` found anywhere in `line` (a log line may carry more
    after it); None when there is none."""
    at = line.find(what + ": ")
    if at < 0:
        return None
    took: dict[str, float] = {}
    pos = at + len(what) + 2
    while (step := _STEP.match(line, pos)) is not None:
        took[step[1]] = float(step[2]) / 1000
        pos = step.end()
    return took or None


_STEP = re.compile(r"(?:, )?([^,]+?) (\d+(?:\.\d+)?) ms")
