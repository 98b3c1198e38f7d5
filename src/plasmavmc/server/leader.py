"""Which control-plane replica runs the control loops, and which replicas are alive.

Every replica serves the API; exactly one — the leader — runs the loops of `core/loops/runner.py`. `run()`
keeps `leader_work` running while this replica leads and cancels it the moment leadership is lost.

- `SoleLeadership` (SQLite, one server): always the leader; the only live server is itself.
- `EtcdLeadership`: each replica holds a lease of `ttl` seconds, refreshed every ttl/3, and registers
  `plasmavmc/servers/{server_id}` under it (the live-server registry). It campaigns by creating
  `plasmavmc/leader` under its lease, only if the key does not exist (one Txn, so at most one wins).
  A killed leader stops refreshing; etcd deletes its keys when the lease expires (within `ttl`); the
  others see the delete on their watch of the leader key and campaign at once. A replica that cannot
  refresh its lease for `ttl` seconds (or is told it expired) steps down before anyone else can be
  elected, so two leaders never run at the same time as far as the lease clock goes; every state
  change is compare-and-swap anyway, so even an overlap could not write twice.

A server id is made fresh per process: a restarted replica is a new member, and the operations its
previous life left in flight are adopted like any dead replica's (`core/pending.py`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from plasmavmc.errors import StoreError
from plasmavmc.store import keys
from plasmavmc.store.base import Store
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.etcd_lease import create_leased, grant, keep_alive, put_leased, revoke

log = logging.getLogger(__name__)

SERVERS = keys.SERVERS
LEADER = keys.LEADER

LeaderWork = Callable[[], Coroutine[Any, Any, None]]


class Leadership(abc.ABC):
    """Leader election and the live-server registry of one replica."""

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self._leader_id: str | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader_id == self.server_id

    @property
    def leader_id(self) -> str | None:
        """The current leader's server id as last seen (None: unknown or none)."""
        return self._leader_id

    @abc.abstractmethod
    async def registered(self) -> None:
        """Return once this replica is in the live-server registry (serve the API only after that, or
        the leader could adopt this replica's operations while it drives them)."""

    @abc.abstractmethod
    async def live_servers(self) -> set[str]:
        """Ids of the replicas alive now (their operations in flight are theirs to finish)."""

    @abc.abstractmethod
    async def run(self, leader_work: LeaderWork) -> None:
        """Campaign forever; run `leader_work` while leading (cancel this to stop and resign)."""


class SoleLeadership(Leadership):
    """One server on a local store: it always leads."""

    def __init__(self, server_id: str) -> None:
        super().__init__(server_id)
        self._leader_id = server_id

    async def registered(self) -> None:
        return

    async def live_servers(self) -> set[str]:
        return {self.server_id}

    async def run(self, leader_work: LeaderWork) -> None:
        await leader_work()


class EtcdLeadership(Leadership):
    """Election through an etcd lease (see the module docstring)."""

    def __init__(self, store: EtcdStore, server_id: str, ttl: int) -> None:
        super().__init__(server_id)
        self._store = store
        self._ttl = ttl
        self._lease = 0
        self._work_lease = 0  # the lease the running leader work was started under
        self._lease_deadline = 0.0  # monotonic time by which our lease surely expires unless refreshed
        self._leader_gone = asyncio.Event()
        self._registered = asyncio.Event()

    async def registered(self) -> None:
        await self._registered.wait()

    async def live_servers(self) -> set[str]:
        return {kv.key.removeprefix(SERVERS) for kv in await self._store.list_all(SERVERS)}

    async def run(self, leader_work: LeaderWork) -> None:
        watcher = asyncio.create_task(self._watch_leader())
        work: asyncio.Task[None] | None = None
        try:
            while True:
                # a tick may not outlast our lease: a leader cut off from etcd must notice before it expires
                budget = self._lease_deadline - time.monotonic() if self._lease else float(self._ttl)
                try:
                    async with asyncio.timeout(max(budget, 0.1)):
                        await self._tick()
                except (StoreError, TimeoutError) as err:
                    log.warning("leader election: %s", str(err) or "etcd did not answer in time")
                if time.monotonic() >= self._lease_deadline:
                    self._lease, self._leader_id = 0, None  # cannot vouch for our lease any more
                work = await self._align(work, leader_work)
                self._leader_gone.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._ttl / 3):
                        await self._leader_gone.wait()
        finally:
            watcher.cancel()
            await _cancel(work)
            await self._resign()

    async def _tick(self) -> None:
        """Hold a live lease, stay registered, and campaign if there is no leader."""
        started = time.monotonic()
        if self._lease and await keep_alive(self._store, self._lease) <= 0:
            log.warning("leader election: lease %x expired", self._lease)
            self._lease, self._leader_id = 0, None
        if not self._lease:
            self._lease = await grant(self._store, self._ttl)
            await put_leased(self._store, SERVERS + self.server_id, b"", self._lease)
        self._lease_deadline = started + self._ttl
        self._registered.set()
        holder = await create_leased(self._store, LEADER, self.server_id.encode(), self._lease)
        leader = holder.decode() or None
        if leader != self._leader_id:
            log.info("leader is now %s%s", leader, " (this server)" if leader == self.server_id else "")
        self._leader_id = leader

    async def _align(self, work: asyncio.Task[None] | None, leader_work: LeaderWork) -> asyncio.Task[None] | None:
        """Start the leader's work when we lead, stop it when we don't. Work started under a lease that
        ended is stopped even if we won again with a new lease: another replica may have led meanwhile."""
        if work is not None and work.done():
            if not work.cancelled() and work.exception() is not None:
                log.error("leader loops failed; restarting them", exc_info=work.exception())
            work = None
        if work is not None and (not self.is_leader or self._work_lease != self._lease):
            log.warning("lost leadership: stopping the control loops")
            await _cancel(work)
            work = None
        if self.is_leader and work is None:
            self._work_lease = self._lease
            return asyncio.create_task(leader_work())
        return work

    async def _watch_leader(self) -> None:
        """Wake the campaign loop as soon as the leader key is deleted (its holder's lease ended)."""
        while True:
            try:
                async for event in self._store.watch(LEADER, 0):
                    if event.key == LEADER and event.type.value == "delete":
                        self._leader_gone.set()
            except StoreError as err:
                log.warning("watch on the leader key: %s; re-watching", err)
                await asyncio.sleep(self._ttl / 3)

    async def _resign(self) -> None:
        if self._lease:
            with contextlib.suppress(StoreError):
                await revoke(self._store, self._lease)
            self._lease, self._leader_id = 0, None


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def leadership_for(store: Store, server_id: str, ttl: int) -> Leadership:
    """Election through etcd when the state is there; a lone leader on a local store."""
    if isinstance(store, EtcdStore):
        return EtcdLeadership(store, server_id, ttl)
    return SoleLeadership(server_id)
