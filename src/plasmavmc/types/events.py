"""VM events: what happened to a VM (a state change, an operation, a failure, a condition change).

An event is stored in the same store commit as the change it describes (`core/vms/events.py`), under
`plasmavmc/events/{org}/{project}/{vm}/...`; its `revision` is that commit's store revision, so a
`WatchVm` client that remembers the last revision it saw resumes from `revision + 1` with nothing lost
or repeated. `StoredEvent` is the stored form (no revision: the key's mod_revision is the revision);
`VmEvent` is what `WatchVm` streams. Heartbeats that change nothing but usage figures are not events.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine


class VmEventType(StrEnum):
    INITIAL = "initial"  # the record as it is when the watch starts (send_initial); not stored
    UPDATED = "updated"  # labels, metadata or spec changed (attach, detach, resize, update)
    STATE_CHANGED = "state_changed"
    DELETED = "deleted"  # the record is gone
    CREATED = "created"
    OPERATION = "operation"  # an operation that keeps the state: reboot, reset, snapshot, restore
    FAILED = "failed"  # an operation or the VM failed; `message` says why
    CONDITION_CHANGED = "condition_changed"


@dataclass(frozen=True)
class StoredEvent:
    """An event as stored; `revision` comes from the key's mod_revision when read back."""

    type: VmEventType
    reason: str  # CamelCase, machine-readable: Created, Scheduled, Started, Rebooted, Failed, ...
    message: str
    actor: str  # the principal of the API call, `node:<id>` for agent reports, `system` for loops
    vm_id: str
    org_id: str
    project_id: str
    previous_state: VmState | None = None
    state: VmState | None = None
    timestamp_ns: int = 0


@dataclass(frozen=True)
class VmEvent:
    type: VmEventType
    previous_state: VmState | None
    state: VmState
    vm: VirtualMachine | None  # the record: set on INITIAL only
    revision: int
    timestamp: int  # unix seconds
    reason: str = ""
    message: str = ""
    actor: str = ""
    vm_id: str = ""
    id: str = ""  # unique per event; several events may share one revision (one commit)
