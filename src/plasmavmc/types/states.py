"""VmState and the ONE transition table (spec §3.2).

Every change of a VM's state goes through `transition()`, which validates the pair against `ALLOWED`
and logs `from -> to`. The table is the single source of truth: operations ask `can_transition` before
touching a hypervisor, so a forbidden operation fails with INVALID_STATE and changes nothing.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from plasmavmc.errors import InvalidState

log = logging.getLogger(__name__)


class VmState(StrEnum):
    PENDING = "pending"  # awaiting scheduling
    CREATING = "creating"  # resources being provisioned on the node
    STOPPED = "stopped"  # created, not running
    STARTING = "starting"  # boot in progress
    RUNNING = "running"  # active
    STOPPING = "stopping"  # graceful shutdown in progress
    MIGRATING = "migrating"  # moving to another node
    ERROR = "error"  # recoverable failure: start, stop or delete may follow
    FAILED = "failed"  # terminal failure: only delete may follow
    DELETED = "deleted"  # soft-deleted, pending cleanup


S = VmState

#: from-state -> the states it may move to. RUNNING -> RUNNING is the reboot loop of the diagram.
ALLOWED: dict[VmState, frozenset[VmState]] = {
    S.PENDING: frozenset({S.CREATING, S.ERROR, S.FAILED, S.DELETED}),
    S.CREATING: frozenset({S.STOPPED, S.ERROR, S.FAILED, S.DELETED}),
    S.STOPPED: frozenset({S.STARTING, S.MIGRATING, S.PENDING, S.ERROR, S.DELETED}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPED, S.ERROR, S.FAILED}),
    S.RUNNING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.MIGRATING, S.ERROR, S.DELETED}),
    S.STOPPING: frozenset({S.STOPPED, S.ERROR}),
    S.MIGRATING: frozenset({S.RUNNING, S.STOPPED, S.ERROR}),
    S.ERROR: frozenset({S.PENDING, S.STARTING, S.STOPPING, S.STOPPED, S.RUNNING, S.FAILED, S.DELETED}),
    S.FAILED: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}


def can_transition(current: VmState, target: VmState) -> bool:
    return target in ALLOWED[current]


def check_transition(current: VmState, target: VmState, *, operation: str) -> None:
    """Raise INVALID_STATE unless `current -> target` is in the table."""
    if not can_transition(current, target):
        raise InvalidState(f"cannot {operation} a VM in state {current.value.upper()}")


def transition(current: VmState, target: VmState, *, vm_id: str, operation: str) -> VmState:
    """Validate `current -> target` and log it; returns `target`."""
    check_transition(current, target, operation=operation)
    log.info("vm %s: %s -> %s (%s)", vm_id, current.value, target.value, operation)
    return target
