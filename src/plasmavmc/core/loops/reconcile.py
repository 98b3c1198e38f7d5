"""Desired-vs-actual reconcile of the VM records: level-triggered, safe to run twice.

Each pass: VMs soft-deleted while their agent was unreachable are cleaned up (the gauges of spec §12.2
are set on every replica at scrape time: `core/gauges.py`). Node heartbeat expiry is `heartbeat_pass`.
Only the leader runs these passes (`core/loops/runner.py` schedules them: on every change under the
watched prefix, and at least every interval); a pass that fails is logged and the next one tries again.
One record that fails (a lost race, an undecodable record, a store error) is logged and skipped: the
pass goes on with the rest. `reconcile_indexed` works from the watched `VmStates` index (cost: the VMs
due for cleanup); `reconcile_once` reads every record and is the safety net, run now and then and
whenever the index is not ready.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from plasmavmc.core.context import Core
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.vms.lifecycle import finish_delete
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.records import Versioned, decode, read
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
DELETE_GRACE = 2  # seconds a DELETED record is left before its cleanup (the delete call may finish it)
FULL_PASS_PAGE = 2000  # records read at a time by the full pass
_STATES = frozenset(state.value for state in VmState)


async def heartbeat_pass(core: Core) -> float:
    """Nodes silent for longer than the timeout become NOT_READY; returns seconds until the next one
    could expire (the caller sleeps that long unless a node record changes first). One listing of the
    node records serves both."""
    _, next_expiry = await core.nodes.expire()
    return max(next_expiry - time.time(), 0.0) + 0.5  # a little after, so the record is past the deadline


async def reconcile_once(core: Core) -> None:
    """The full pass: read every VM record's state, page by page, narrowed by the store to the two
    fields it looks at (`Store.list_fields`: no record decoded on the event loop, none decoded whole);
    only the records due for cleanup (and any that do not read, to be reported) are read and acted on."""
    now = time.time()
    after: str | None = None
    while True:
        page = await core.store.list_fields(keys.VMS, ("state", "updated_at"), start_after=after, limit=FULL_PASS_PAGE)
        for item in page.items:
            if _due(item.values, now):
                await _each(item.key, functools.partial(_reconcile_record, core, item.key, now))
        if page.next_start_after is None:
            return
        after = page.next_start_after


def _due(values: tuple[Any, ...] | None, now: float) -> bool:
    """Whether a full pass acts on a record: DELETED past the grace, or not readable."""
    if values is None:
        return True
    state, updated_at = values
    if state not in _STATES or not isinstance(updated_at, (int, float)):
        return True
    return state == VmState.DELETED and now - updated_at > DELETE_GRACE


async def _reconcile_record(core: Core, key: str, now: float) -> None:
    kv = await core.store.get(key)
    if kv is None:
        return
    vm = decode(VirtualMachine, kv)  # a record that does not decode is reported here (and skipped)
    if vm.value.state == VmState.DELETED and now - vm.value.updated_at > DELETE_GRACE:
        await finish_delete(core, vm)


async def reconcile_indexed(core: Core, index: VmStates) -> None:
    """The same pass from the watched index: only the DELETED VMs due for cleanup are read."""
    now = time.time()
    for key, entry in index.in_state(VmState.DELETED):
        if now - entry.updated_at > DELETE_GRACE:
            await _each(key, functools.partial(_finish_if_deleted, core, key))


async def _finish_if_deleted(core: Core, key: str) -> None:
    vm: Versioned[VirtualMachine] | None = await read(core.store, VirtualMachine, key)
    if vm is not None and vm.value.state == VmState.DELETED:
        await finish_delete(core, vm)


async def _each(key: str, step: Callable[[], Awaitable[None]]) -> None:
    """One record's step of a pass; its failure is logged and the pass goes on."""
    try:
        await step()
    except PlasmaError as err:
        log.warning("reconcile: %s skipped this pass: %s", key, err)
    except Exception:
        log.exception("reconcile: %s skipped this pass", key)
