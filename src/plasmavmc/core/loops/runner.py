"""The leader's control loops (spec §10.3): level-triggered, watch-driven, safe to run twice.

- pending: operations in flight (`plasmavmc/scheduler/pending/...`) whose owner is no longer a live
  server, or whose own lease ended (no progress: `core/pending.py`), are adopted and finished
  (`core/loops/adopt.py`); woken by changes under the pending prefix and in the live-server registry (a
  replica's lease ending), and every `interval` anyway;
- heartbeat: nodes silent past the timeout become NOT_READY; it sleeps until the earliest node could
  expire. Liveness is the leader's in-memory table (`core/nodes/liveness.py`): on taking leadership
  every node gets a full timeout of grace, the leader stops persisting liveness-only heartbeats in the
  node records and writes its whole table as one key every few seconds instead (for the followers);
- reconcile: desired vs actual on the VM records (`core/loops/reconcile.py`); woken by VM changes, at most
  once per `min_gap`, and every `interval` anyway. The pass works from a watched index of VM states
  (`core/loops/vm_states.py`, which is also its doorbell); the full pass that decodes every record runs at
  least every `FULL_PASS_INTERVAL` seconds, and whenever the index is not ready;
- restarts: automatic restarts of the restart policy (`core/loops/restarts.py`), when each is due; woken
  by changes under `keys.RESTARTS`;
- events: the VM event history is bounded (`core/loops/event_retention.py`), every `EVENTS_INTERVAL`.

Each pass reads the whole current state and acts on it, never on the event that woke it, so a missed,
repeated or compacted watch only delays work by one interval: the watch is a doorbell, not a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from plasmavmc.core import pending
from plasmavmc.core.context import Core
from plasmavmc.core.loops import event_retention
from plasmavmc.core.loops.adopt import finish_operation
from plasmavmc.core.loops.reconcile import heartbeat_pass, reconcile_indexed, reconcile_once
from plasmavmc.core.loops.restarts import RestartLoop
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.errors import PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store

log = logging.getLogger(__name__)

LiveServers = Callable[[], Awaitable[set[str]]]
DEFAULT_INTERVAL = 2.0
RECONCILE_MIN_GAP = 0.5
# seconds between full reconcile passes while the index is ready: the safety net under the index. A pass
# lists every VM record's state (100,000 records: about half a second of CPU), so at one a minute it was
# the idle server's largest cost that grows with the fleet; the index itself follows every change.
FULL_PASS_INTERVAL = 600.0
INDEX_WAITS = 5  # intervals the reconcile waits for the index before a full pass without it
# seconds between event retention passes (core/loops/event_retention.py): a pass reads every event key
# (~0.3 s of CPU per 30,000 events), and the bounds it keeps (days, hundreds per VM) need no finer step
EVENTS_INTERVAL = 600.0


class Doorbell:
    """An event set on every change under some prefixes (re-watching after any watch failure)."""

    def __init__(self, store: Store, prefixes: Sequence[str], retry: float) -> None:
        self.rang = asyncio.Event()
        self._store, self._prefixes, self._retry = store, prefixes, retry

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for prefix in self._prefixes:
                group.create_task(self._watch(prefix))

    async def _watch(self, prefix: str) -> None:
        while True:
            try:
                async for _ in self._store.watch(prefix, 0):
                    self.rang.set()
            except PlasmaError as err:  # Compacted or a store failure: the next pass re-reads anyway
                log.warning("watch on %s: %s; watching again", prefix, err)
                self.rang.set()
                await asyncio.sleep(self._retry)

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.rang.wait()
        self.rang.clear()


class PendingLoop:
    """Adopts the operations of dead servers and finishes each in its own task."""

    def __init__(self, core: Core, live_servers: LiveServers, retry_after: float) -> None:
        self._core, self._live, self._retry_after = core, live_servers, retry_after
        self._active: dict[str, asyncio.Task[None]] = {}

    async def pass_once(self) -> None:
        live = await self._live()
        for kv in await self._core.store.list_all(keys.PENDING):
            if kv.key in self._active:
                continue
            if not pending.due(pending.Pending.decode(kv.value), live, time.time_ns()):
                continue
            self._active[kv.key] = asyncio.create_task(self._finish(kv))

    async def _finish(self, kv: KeyValue) -> None:
        store = self._core.store
        try:
            op = await pending.adopt(store, kv, self._core.server_id)
            if op is None:
                return  # someone else changed it first
            try:
                async with pending.renewing(store, op):
                    await finish_operation(self._core, op)
            except BaseException as err:
                with contextlib.suppress(PlasmaError):
                    await pending.release(store, op)  # ownerless again: a later pass retries
                if not isinstance(err, PlasmaError):
                    raise
                log.warning("pending %s: %s; retrying on a later pass", kv.key, err)
                await asyncio.sleep(self._retry_after)
                return
            await pending.finish(store, op)
        except PlasmaError as err:
            log.warning("pending %s: %s", kv.key, err)
        finally:
            self._active.pop(kv.key, None)

    def cancel_all(self) -> None:
        for task in self._active.values():
            task.cancel()


async def _repeat(name: str, step: Callable[[], Awaitable[float]], fallback: float) -> None:
    """Run `step` forever; it returns how long to wait before the next run (`fallback` after a failure)."""
    while True:
        try:
            wait = await step()
        except Exception:
            log.exception("%s pass failed; retrying", name)
            wait = fallback
        await asyncio.sleep(wait)


async def run_loops(
    core: Core, live_servers: LiveServers, interval: float = DEFAULT_INTERVAL, shared: VmStates | None = None
) -> None:
    """The leader's loops, until cancelled (when leadership is lost or the server stops). `shared`: the
    replica's own running index of VM states, used instead of one of the loops' own."""
    pending_bell = Doorbell(core.store, [keys.PENDING, keys.SERVERS], interval)
    vm_states = shared or VmStates(core.store, interval)
    adopter = PendingLoop(core, live_servers, interval)
    restarter = RestartLoop(core)
    restart_bell = Doorbell(core.store, [keys.RESTARTS], interval)
    last_full = time.monotonic()  # the index's own listing is the first full look; the pass follows later

    async def pending_step() -> float:
        await adopter.pass_once()
        await pending_bell.wait(interval)
        return 0.0

    async def events_step() -> float:
        await event_retention.compact(core.store, core.event_retention)
        return EVENTS_INTERVAL

    async def restart_step() -> float:
        wait = await restarter.pass_once()
        await restart_bell.wait(wait)
        return 0.0

    async def heartbeat_step() -> float:
        return min(await heartbeat_pass(core), interval * 5)

    async def liveness_step() -> float:
        await core.nodes.share_liveness()
        return core.nodes.liveness.share_every()

    async def reconcile_step() -> float:
        nonlocal last_full
        # just started (or re-listing): wait a little for the index rather than scan every record
        # alongside its own listing (both at once were what delayed the gauges after a restart)
        await vm_states.until_ready(interval * INDEX_WAITS)
        if not vm_states.ready or time.monotonic() - last_full >= FULL_PASS_INTERVAL:
            started = time.monotonic()
            await reconcile_once(core)
            last_full = started
        else:
            await reconcile_indexed(core, vm_states)
        await asyncio.sleep(RECONCILE_MIN_GAP)
        await vm_states.wait(interval)
        return 0.0

    core.nodes.liveness.grant_grace()
    core.nodes.liveness.leading = True
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(pending_bell.run())
            group.create_task(restart_bell.run())
            group.create_task(_repeat("restarts", restart_step, interval))
            if shared is None:
                group.create_task(vm_states.run())
            group.create_task(_repeat("pending", pending_step, interval))
            group.create_task(_repeat("heartbeat", heartbeat_step, interval))
            group.create_task(_repeat("liveness", liveness_step, interval))
            group.create_task(_repeat("events", events_step, EVENTS_INTERVAL))
            group.create_task(_repeat("reconcile", reconcile_step, interval))
    finally:
        core.nodes.liveness.leading = False
        adopter.cancel_all()
        restarter.cancel_all()
