"""Operations in flight: `plasmavmc/scheduler/pending/{timestamp}/{vm_id}` (spec §8.1).

A multi-step operation on a VM (create: place then provision; start; stop) writes a pending record
together with its first state change and deletes it once the VM reached the outcome. The record names
the operation and its *owner*, the server id of the replica driving it. While the owner is alive it is
the only driver; when the owner dies (a replica killed in the middle of CreateVm), the leader adopts the
record — compare-and-swap of the owner field, so two adopters cannot both win — and finishes the
operation from whatever state the VM reached (`core/loops/adopt.py`). Every step is level-triggered, so a
step done twice (before the kill, and again by the adopter) has the effect of doing it once.

Each record also carries a lease of its own (`lease_until_ns`, wall clock): the driver renews it every
`lease / 3` while the operation is being driven (`driving`), so an operation that stopped making
progress although its owner lives on — its driver gave up but could not release the record during a
store outage, say — is due (`due`) once the lease ends, and the leader takes it over like a dead
owner's. A record without a lease (0, written before leases existed) is judged by its owner alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TypeVar

from plasmavmc.errors import Conflict, PlasmaError
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store, Write
from plasmavmc.store.records import Versioned, mutate

T = TypeVar("T")
log = logging.getLogger(__name__)

OP_LEASE = 15.0  # seconds an operation may go without progress before the leader takes it over


class Op(StrEnum):
    CREATE = "create"
    START = "start"
    STOP = "stop"
    IMAGE = "image"  # an image ingest: `vm_key`/`vm_id` name the image record (`core/images.py`)


@dataclass(frozen=True)
class Pending:
    op: Op
    vm_key: str
    vm_id: str
    owner: str
    at_ns: int
    lease_until_ns: int = 0  # 0: no lease (judged by the owner's liveness only)

    @property
    def key(self) -> str:
        return keys.pending(self.at_ns, self.vm_id)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def decode(raw: bytes) -> Pending:
        data = json.loads(raw)
        return Pending(
            Op(data["op"]), data["vm_key"], data["vm_id"], data["owner"], int(data["at_ns"]),
            int(data.get("lease_until_ns", 0)),
        )

    def leased(self, owner: str, lease: float) -> Pending:
        """This operation owned by `owner`, its lease ending `lease` seconds from now."""
        return Pending(self.op, self.vm_key, self.vm_id, owner, self.at_ns, time.time_ns() + int(lease * 1e9))


def begin(op: Op, vm_key: str, vm_id: str, owner: str, *, lease: float = OP_LEASE) -> Pending:
    return Pending(op, vm_key, vm_id, owner, time.time_ns()).leased(owner, lease)


def due(record: Pending, live: set[str], now_ns: int) -> bool:
    """Whether the leader should take `record` over: its owner is gone, or its lease ended."""
    return record.owner not in live or 0 < record.lease_until_ns < now_ns


def begin_write(pending: Pending) -> Write:
    """The write that records the operation (commit it with the operation's first state change)."""
    return Write(pending.key, pending.encode(), 0)


async def finish(store: Store, pending: Pending) -> None:
    """The operation reached its outcome: forget it (idempotent)."""
    await store.delete(pending.key)


async def adopt(store: Store, kv: KeyValue, new_owner: str) -> Pending | None:
    """Take over a dead owner's record; None when another adopter (or the owner) changed it first."""
    mine = Pending.decode(kv.value).leased(new_owner, OP_LEASE)
    try:
        await store.put(kv.key, mine.encode(), expected_revision=kv.mod_revision)
    except Conflict:
        return None
    return mine


async def release(store: Store, pending: Pending) -> None:
    """The owner gives up without an outcome (its caller went away): the leader adopts the record."""
    orphan = Pending(pending.op, pending.vm_key, pending.vm_id, "", pending.at_ns)
    kv = await store.get(pending.key)
    if kv is not None:
        with contextlib.suppress(Conflict):
            await store.put(pending.key, orphan.encode(), expected_revision=kv.mod_revision)


@dataclass
class Driving:
    """An operation being driven (see `driving`)."""

    store: Store
    pending: Pending
    finished: bool = False

    async def last_step(
        self, cls: type[T], key: str, fn: Callable[[T], T], *, known: Versioned[T] | None = None,
        durable: bool = True,
    ) -> Versioned[T]:
        """The operation's last state change (`records.mutate`), committed together with the removal of
        the pending record: the outcome and the end of the operation are one write. `durable=False`
        (`Store.commit`) for an outcome the node reports again: lost in a power cut, the operation is
        still pending and the leader's adopter finishes it from the node's answer."""
        done = await mutate(self.store, cls, key, fn, known=known, also=[Write(self.pending.key, None)],
                            durable=durable)
        self.finished = True
        return done


async def renew(store: Store, pending: Pending, lease: float) -> bool:
    """Extend the record's lease; False when it is gone or someone else owns it now (stop renewing)."""
    kv = await store.get(pending.key)
    if kv is None or Pending.decode(kv.value).owner != pending.owner:
        return False
    with contextlib.suppress(Conflict):  # changed meanwhile: the next renewal looks again
        await store.put(pending.key, pending.leased(pending.owner, lease).encode(), expected_revision=kv.mod_revision)
    return True


async def _renew_forever(store: Store, pending: Pending, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        try:
            if not await renew(store, pending, lease):
                return
        except PlasmaError as err:  # the store is out: the next renewal tries again
            log.warning("pending %s: lease not renewed: %s", pending.key, err)


@contextlib.asynccontextmanager
async def renewing(store: Store, pending: Pending, lease: float = OP_LEASE) -> AsyncIterator[None]:
    """Keep the record's lease alive while the block runs."""
    task = asyncio.create_task(_renew_forever(store, pending, lease))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def driving(store: Store, pending: Pending, *, lease: float = OP_LEASE) -> AsyncIterator[Driving]:
    """Around an operation's steps, renewing its lease: an outcome (success or a final PlasmaError)
    finishes the record (unless `Driving.last_step` already did, in the same commit as the outcome);
    anything else (a retryable failure, the caller cancelled, a bug) releases it to the leader, which then
    finishes the operation."""
    drive = Driving(store, pending)
    try:
        async with renewing(store, pending, lease):
            yield drive
    except PlasmaError as err:
        if err.retryable:
            with contextlib.suppress(Exception):
                await release(store, pending)
        else:
            await finish(store, pending)
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            await release(store, pending)
        raise
    if not drive.finished:
        await finish(store, pending)
