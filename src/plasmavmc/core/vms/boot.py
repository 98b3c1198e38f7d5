"""The control plane's half of a VM's boot timeline (`types.vm.BootTimeline`), and its metric.

The control plane stamps accepted (CreateVm, or StartVm for a later start), placed, image ready (the
agent made the disks on cached images) and start requested; the node agent stamps process up, first
output and ready (`agent/boot_watch.py`), which arrive with its status reports and are merged here.
`plasmavmc_vm_boot_seconds` observes start requested -> guest ready, once per start, on the replica that
stores the ready time.
"""

from __future__ import annotations

import time

from plasmavmc.observe.metrics import BOOT_SECONDS
from plasmavmc.store.records import replace
from plasmavmc.types.vm import BootTimeline, VirtualMachine

CLOCK_SLACK = 2.0  # seconds of clock difference tolerated between the control plane and a node


def accepted(now: float) -> BootTimeline:
    return BootTimeline(accepted_at=now)


def stamped(vm: VirtualMachine, **steps: float) -> VirtualMachine:
    return replace(vm, status=replace(vm.status, boot=replace(vm.status.boot, **steps)))


def start_requested(vm: VirtualMachine, now: float) -> VirtualMachine:
    """A first start continues the create's timeline; a later one starts a new one at `now`."""
    boot = vm.status.boot
    if boot.process_up_at > 0 or boot.accepted_at <= 0:
        boot = BootTimeline(now, now, now, now)
    else:
        boot = replace(boot, start_requested_at=now)
    return replace(vm, status=replace(vm.status, boot=boot))


def with_node_times(vm: VirtualMachine, observed: BootTimeline) -> VirtualMachine:
    """The agent's steps of this start (a report about an earlier start is ignored)."""
    boot = vm.status.boot
    if boot.start_requested_at <= 0 or observed.process_up_at < boot.start_requested_at - CLOCK_SLACK:
        return vm
    merged = replace(boot, process_up_at=max(observed.process_up_at, boot.start_requested_at),
                     first_output_at=observed.first_output_at, ready_at=observed.ready_at)
    return vm if merged == boot else replace(vm, status=replace(vm.status, boot=merged))


def observe_ready(before: BootTimeline, after: BootTimeline) -> None:
    """Count the boot when this write stored its ready time."""
    if after.ready_at > 0 and before.ready_at <= 0 and after.start_requested_at > 0:
        BOOT_SECONDS.observe(after.ready_at - after.start_requested_at)


def now() -> float:
    return time.time()
