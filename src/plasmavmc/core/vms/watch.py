"""`WatchVm` and `GetConsole` on the control plane: streams built on the store's watch and the agent.

GetConsole finds the VM's node in the watched copy GetVm reads (no store read on the way to the
console), and streams the node agent's console.

A watch streams the stored events (`core/vms/events.py`) of one VM or of a whole project, in revision
order: with `send_initial` the current record first, then every event written after it. With
`start_revision` > 0 it first replays the kept events from that revision on (read with one list, which
also gives the revision the follow starts after), so a client that resumes from the last revision it saw
loses nothing and (skipping the ids it already has at that revision) repeats nothing. A one-VM watch ends
after the VM's `Deleted` event; `history_only` ends after the replay.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from plasmavmc import validation
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms import reads
from plasmavmc.errors import VmNotFound
from plasmavmc.store import keys
from plasmavmc.store.base import EventType, KeyValue
from plasmavmc.types.events import VmEvent, VmEventType
from plasmavmc.v1 import types_pb2


async def _prefix(core: Core, ref: VmRef, send_initial: bool, resuming: bool) -> tuple[str, VmEvent | None]:
    """The events prefix to follow, and the INITIAL event when asked for one."""
    validation.name(ref.org_id, "vm.org_id")
    validation.name(ref.project_id, "vm.project_id")
    if not ref.vm:
        return keys.vm_events_in(ref.org_id, ref.project_id), None
    try:
        found = await core.find_vm(ref)
    except VmNotFound:
        if not (resuming and validation.is_uuid(ref.vm)):
            raise
        return keys.vm_events_in(ref.org_id, ref.project_id, ref.vm), None  # deleted since: replay its end
    vm = found.value
    initial = VmEvent(VmEventType.INITIAL, None, vm.state, vm, found.revision, int(time.time()), vm_id=vm.id)
    return keys.vm_events_in(ref.org_id, ref.project_id, vm.id), initial if send_initial else None


async def watch_vm(
    core: Core, ref: VmRef, send_initial: bool, start_revision: int = 0, history_only: bool = False
) -> AsyncIterator[VmEvent]:
    prefix, initial = await _prefix(core, ref, send_initial, start_revision > 0)
    follow_after = await core.store.revision() if initial is None else initial.revision
    if initial is not None:
        yield initial
    if start_revision > 0 or history_only:
        page = await core.store.list(prefix)
        kept = sorted((kv for kv in page.items if kv.mod_revision >= start_revision),
                      key=lambda kv: (kv.mod_revision, kv.key))
        for kv in kept:
            event = vm_events.from_kv(kv)
            yield event
            if ref.vm and event.type == VmEventType.DELETED:
                return
        follow_after = page.revision
    if history_only:
        return
    async for change in core.store.watch(prefix, follow_after + 1):
        if change.type != EventType.PUT:
            continue  # history removed by compaction, not an event
        event = vm_events.from_kv(KeyValue(change.key, change.value, change.revision, change.revision))
        yield event
        if ref.vm and event.type == VmEventType.DELETED:
            return


async def console(core: Core, ref: VmRef, follow: bool) -> AsyncIterator[bytes]:
    vm_id, node_id = await _placed(core, ref)
    agent = await core.agent_on(node_id, vm_id)
    async for chunk in agent.console(vm_id, follow):
        yield chunk


async def _placed(core: Core, ref: VmRef) -> tuple[str, str | None]:
    """(id, node) of the VM `ref` names: from the watched copy GetVm answers from (`reads.py`: the
    caller's own writes included) when it can answer, else from the store."""
    found = await core.vm_reads.find(ref.org_id, ref.project_id, ref.vm) if core.vm_reads else None
    if found is None:
        vm = (await core.find_vm(ref)).value
        return vm.id, vm.node_id
    kept = types_pb2.VirtualMachine.FromString(reads.rendered(*found))
    return kept.id, kept.node_id or None
