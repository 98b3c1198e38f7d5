"""Per-operation leases on pending records (`core/pending.py`), on a real SQLite store: a driven
operation keeps its lease alive; one that stops being driven becomes due for takeover although its
owner lives; a takeover ends the old driver's renewals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.core import pending
from plasmavmc.store.sqlite import SqliteStore

DEADLINE = 10.0
LEASE = 1.0  # renewed every third of it: slack for a loaded machine


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "state.db")
    yield opened
    await opened.close()


async def stored(store: SqliteStore, op: pending.Pending) -> pending.Pending | None:
    kv = await store.get(op.key)
    return None if kv is None else pending.Pending.decode(kv.value)


async def begun(store: SqliteStore, owner: str = "server-a") -> pending.Pending:
    op = pending.begin(pending.Op.START, "vms/x", "vm-1", owner, lease=LEASE)
    await store.commit([pending.begin_write(op)])
    return op


def test_due_when_owner_gone_or_lease_over() -> None:
    now = time.time_ns()
    alive = pending.Pending(pending.Op.CREATE, "k", "v", "a", now, now + 10**9)
    expired = pending.Pending(pending.Op.CREATE, "k", "v", "a", now, now - 1)
    unleased = pending.Pending(pending.Op.CREATE, "k", "v", "a", now)  # a record from before leases
    assert not pending.due(alive, {"a"}, now)
    assert pending.due(alive, {"b"}, now)
    assert pending.due(expired, {"a"}, now)
    assert not pending.due(unleased, {"a"}, now)
    assert pending.due(unleased, set(), now)


def test_records_without_a_lease_still_decode() -> None:
    raw = b'{"at_ns": 5, "op": "stop", "owner": "a", "vm_id": "v", "vm_key": "k"}'
    assert pending.Pending.decode(raw) == pending.Pending(pending.Op.STOP, "k", "v", "a", 5, 0)


async def test_a_driven_operation_keeps_its_lease(store: SqliteStore) -> None:
    op = await begun(store)
    async with pending.driving(store, op, lease=LEASE):
        deadline = time.monotonic() + DEADLINE
        while time.time_ns() < op.lease_until_ns + LEASE * 1e9:  # well past the first lease
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # waiting for wall-clock time to pass, with a deadline
        now = await stored(store, op)
        assert now is not None and now.owner == "server-a"
        # renewed while driven (a fixed instant: a starved loop may renew late, which is not this test's point)
        assert now.lease_until_ns > op.lease_until_ns
        assert not pending.due(now, {"server-a"}, now.lease_until_ns - 1)
    assert await stored(store, op) is None  # the outcome finished the record


async def test_an_undriven_operation_becomes_due_although_its_owner_lives(store: SqliteStore) -> None:
    op = await begun(store)  # its driver went away without releasing it (say the store was out)
    deadline = time.monotonic() + DEADLINE
    while not pending.due(record := await stored(store, op) or op, {"server-a"}, time.time_ns()):
        assert time.monotonic() < deadline, "never due"
        await asyncio.sleep(0.05)  # polling wall-clock lease expiry, with a deadline
    kv = await store.get(op.key)
    assert kv is not None and record.owner == "server-a"
    taken = await pending.adopt(store, kv, "leader")
    assert taken is not None and taken.owner == "leader"
    assert not pending.due(taken, {"server-a", "leader"}, time.time_ns())  # the adopter's own lease
    assert not await pending.renew(store, op, LEASE)  # the old driver stops renewing a taken record
    after = await stored(store, op)
    assert after is not None and after.owner == "leader"
