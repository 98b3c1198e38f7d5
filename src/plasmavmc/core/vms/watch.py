"""`WatchVm` and `GetConsole` on the control plane: streams built on the store's watch and the agent.

A watch sends the current record first (if asked), then one event per stored change of that VM, in
revision order, so a client sees STARTING then RUNNING as they are written. It ends after the record is
removed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from plasmavmc.core.context import Core, VmRef
from plasmavmc.store.base import EventType, KeyValue
from plasmavmc.store.records import decode
from plasmavmc.types.events import VmEvent, VmEventType
from plasmavmc.types.vm import VirtualMachine


async def watch_vm(core: Core, ref: VmRef, send_initial: bool) -> AsyncIterator[VmEvent]:
    found = await core.find_vm(ref)
    vm = found.value
    if send_initial:
        yield VmEvent(VmEventType.INITIAL, None, vm.state, vm, found.revision, int(time.time()))
    async for event in core.store.watch(found.key, found.revision + 1):
        if event.key != found.key:
            continue
        now = int(time.time())
        if event.type == EventType.DELETE:
            yield VmEvent(VmEventType.DELETED, vm.state, vm.state, vm, event.revision, now)
            return
        new = decode(VirtualMachine, KeyValue(event.key, event.value, 0, event.revision)).value
        kind = VmEventType.STATE_CHANGED if new.state != vm.state else VmEventType.UPDATED
        yield VmEvent(kind, vm.state, new.state, new, event.revision, now)
        vm = new


async def console(core: Core, ref: VmRef, follow: bool) -> AsyncIterator[bytes]:
    found = await core.find_vm(ref)
    agent = await core.agent_for(found.value)
    async for chunk in agent.console(found.value.id, follow):
        yield chunk
