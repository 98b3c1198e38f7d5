"""VM events as streamed by `WatchVm`: one per stored change of a VM record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine


class VmEventType(StrEnum):
    INITIAL = "initial"  # the record as it is when the watch starts (send_initial)
    UPDATED = "updated"  # a change that kept the state
    STATE_CHANGED = "state_changed"
    DELETED = "deleted"


@dataclass(frozen=True)
class VmEvent:
    type: VmEventType
    previous_state: VmState | None
    state: VmState
    vm: VirtualMachine
    revision: int
    timestamp: int
