"""The control plane's periodic, level-triggered loop: safe to run twice, picks up left-over work.

Each pass: nodes whose heartbeat expired become NOT_READY; VMs soft-deleted while their agent was
unreachable are cleaned up; the gauges of spec §12.2 are refreshed from the store. A pass that fails is
logged and the next one tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from plasmavmc.core.context import Core
from plasmavmc.core.lifecycle import finish_delete
from plasmavmc.core.records import decode
from plasmavmc.metrics import HEARTBEAT_AGE, NODE_ALLOCATED_VCPUS, NODE_CAPACITY_VCPUS, VMS_TOTAL
from plasmavmc.store import keys
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

log = logging.getLogger(__name__)


async def reconcile_once(core: Core) -> None:
    await core.nodes.expire()
    now = time.time()
    for node in await core.nodes.list():
        n = node.value
        NODE_CAPACITY_VCPUS.labels(n.id).set(n.capacity.vcpus)
        NODE_ALLOCATED_VCPUS.labels(n.id).set(n.allocated.vcpus)
        HEARTBEAT_AGE.labels(n.id).set(max(0.0, now - n.last_heartbeat))
    states: Counter[VmState] = Counter()
    for kv in await core.store.list_all(keys.VMS):
        vm = decode(VirtualMachine, kv)
        states[vm.value.state] += 1
        if vm.value.state == VmState.DELETED and now - vm.value.updated_at > 2:
            await finish_delete(core, vm)
    for state in VmState:
        VMS_TOTAL.labels(state.value).set(states[state])


async def reconcile_forever(core: Core, interval: float) -> None:
    while True:
        try:
            await reconcile_once(core)
        except Exception:
            log.exception("reconcile pass failed; retrying next pass")
        await asyncio.sleep(interval)
