"""Leader election through an etcd lease (`server/leader.py`) against a real etcd, without VMs.

Three replicas campaign: exactly one runs the leader work; when it stops (resigning, like a clean
shutdown) another takes over; a replica whose lease is revoked behind its back steps down and stops its
leader work; and the live-server registry follows the replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.server.leader import LEADER, EtcdLeadership, SoleLeadership
from plasmavmc.store.etcd import EtcdStore
from plasmavmc.store.etcd_lease import revoke
from tests.etcd import EtcdCluster, needs_etcd

pytestmark = needs_etcd

TTL = 2
DEADLINE = 15.0


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(tmp_path / "etcd")
    try:
        yield cluster
    finally:
        cluster.stop()


class Replica:
    """One campaigning replica; `working` is set while its leader work runs."""

    def __init__(self, store: EtcdStore, name: str) -> None:
        self.store = store
        self.leadership = EtcdLeadership(store, name, TTL)
        self.working = asyncio.Event()
        self.stopped_working = asyncio.Event()
        self.task = asyncio.ensure_future(self.leadership.run(self._work))

    async def _work(self) -> None:
        self.working.set()
        try:
            await asyncio.Event().wait()  # leader work runs until cancelled
        finally:
            self.working.clear()
            self.stopped_working.set()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def replicas(etcd: EtcdCluster) -> AsyncIterator[list[Replica]]:
    stores = [await EtcdStore.open(etcd.endpoints) for _ in range(3)]
    made = [Replica(store, f"r{i}") for i, store in enumerate(stores)]
    try:
        yield made
    finally:
        for replica in made:
            await replica.stop()
        for store in stores:
            await store.close()


async def one_leader(replicas: list[Replica]) -> Replica:
    async def settled() -> Replica:
        while True:
            leaders = [r for r in replicas if r.working.is_set()]
            ids = {r.leadership.leader_id for r in replicas}
            if len(leaders) == 1 and ids == {leaders[0].leadership.server_id}:
                return leaders[0]
            await asyncio.sleep(0.05)  # polling in-process state, with the deadline below

    return await asyncio.wait_for(settled(), DEADLINE)


async def test_exactly_one_leader_and_takeover(replicas: list[Replica]) -> None:
    first = await one_leader(replicas)
    kv = await first.store.get(LEADER)
    assert kv is not None and kv.value.decode() == first.leadership.server_id
    assert await first.leadership.live_servers() == {"r0", "r1", "r2"}

    await first.stop()  # resigns: revokes its lease, so the leader key goes at once
    rest = [r for r in replicas if r is not first]
    second = await one_leader(rest)
    assert second is not first and not first.working.is_set()
    assert await second.leadership.live_servers() == {r.leadership.server_id for r in rest}


async def test_leader_whose_lease_is_gone_steps_down(replicas: list[Replica]) -> None:
    leader = await one_leader(replicas)
    lease = leader.leadership._lease  # the lease it holds, revoked as if it had expired
    await revoke(leader.store, lease)
    await asyncio.wait_for(leader.stopped_working.wait(), DEADLINE)
    assert (await one_leader(replicas)).leadership.server_id  # someone leads again (maybe the same replica)


async def test_a_lone_leader_that_wins_again_restarts_its_work(etcd: EtcdCluster) -> None:
    """Alone, the replica whose lease was revoked wins the next election itself: the work it started
    under the old lease still stops (another replica could have led in between), then starts anew."""
    store = await EtcdStore.open(etcd.endpoints)
    alone = Replica(store, "alone")
    try:
        await one_leader([alone])
        old = alone.leadership._lease
        await revoke(store, old)
        await asyncio.wait_for(alone.stopped_working.wait(), DEADLINE)
        await one_leader([alone])
        assert alone.leadership._lease not in (0, old)
    finally:
        await alone.stop()
        await store.close()


async def test_sole_leadership_always_leads() -> None:
    sole = SoleLeadership("only")
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    await asyncio.wait_for(sole.run(work), DEADLINE)
    assert ran.is_set() and sole.is_leader and await sole.live_servers() == {"only"}
