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

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from plasmavmc.core.context import Core
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.core.vms.lifecycle import finish_delete
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue
from plasmavmc.store.records import Versioned, decode, read
from plasmavmc.types import codec
from plasmavmc.types.node import NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)
DELETE_GRACE = 2  # seconds a DELETED record is left before its cleanup (the delete call may finish it)
FULL_PASS_PAGE = 500  # records read (and peeked off the event loop) at a time by the full pass


async def heartbeat_pass(core: Core) -> float:
    """Nodes silent for longer than the timeout become NOT_READY; returns seconds until the next one
    could expire (the caller sleeps that long unless a node record changes first)."""
    await core.nodes.expire()
    now = time.time()
    next_expiry = core.nodes.heartbeat_timeout
    for node in await core.nodes.list():
        n = node.value
        if n.state == NodeState.READY:
            next_expiry = min(next_expiry, core.nodes.liveness.expires_at(n) - now)
    return max(next_expiry, 0.0) + 0.5  # a little after, so the record is past the deadline


async def reconcile_once(core: Core) -> None:
    """The full pass: read every VM record, page by page; the state of each page's records is peeked in
    a worker thread (the event loop keeps answering), and only the records due for cleanup (and any
    that do not decode, to be reported) are decoded and acted on."""
    now = time.time()
    after: str | None = None
    while True:
        page = await core.store.list(keys.VMS, start_after=after, limit=FULL_PASS_PAGE)
        for kv in await asyncio.to_thread(_due, page.items, now):
            await _each(kv.key, functools.partial(_reconcile_record, core, kv, now))
        if page.next_start_after is None:
            return
        after = page.next_start_after


def _due(items: Sequence[KeyValue], now: float) -> list[KeyValue]:
    """The records of a page a full pass acts on: DELETED past the grace, or undecodable."""
    out = []
    for kv in items:
        try:
            state, updated_at = codec.peek(VirtualMachine, kv.value, "state", "updated_at")
        except (ValueError, TypeError, KeyError):
            out.append(kv)
            continue
        if state == VmState.DELETED and now - updated_at > DELETE_GRACE:
            out.append(kv)
    return out


async def _reconcile_record(core: Core, kv: KeyValue, now: float) -> None:
    vm = decode(VirtualMachine, kv)
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
