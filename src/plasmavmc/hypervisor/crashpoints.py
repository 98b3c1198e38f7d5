"""Named crash points, for the tests that kill an agent at each step of creating and starting a VM.

When `PLASMAVMC_CRASH_AT` names a point (e.g. "create:handle"), the process SIGKILLs itself on reaching
it: exactly what `kill -9` at that moment does, with no race against a test polling from outside. Unset
(always, outside those tests) a crash point costs one dictionary lookup.

Points: create:begin (nothing made yet), create:dir (directory made, no handle yet), create:handle
(handle written, nothing else), create:disks (disks made, vm.json not yet), start:spawned (hypervisor
process running, start not finished).
"""

from __future__ import annotations

import os
import signal

ENV = "PLASMAVMC_CRASH_AT"


def reached(point: str) -> None:
    if os.environ.get(ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
