"""Operations in flight: `plasmavmc/scheduler/pending/{timestamp}/{vm_id}` (spec §8.1).

A multi-step operation on a VM (create: place then provision; start; stop) writes a pending record
together with its first state change and deletes it once the VM reached the outcome. The record names
the operation and its *owner*, the server id of the replica driving it. While the owner is alive it is
the only driver; when the owner dies (a replica killed in the middle of CreateVm), the leader adopts the
record — compare-and-swap of the owner field, so two adopters cannot both win — and finishes the
operation from whatever state the VM reached (`core/loops/adopt.py`). Every step is level-triggered, so a
step done twice (before the kill, and again by the adopter) has the effect of doing it once.
"""

from __future__ import annotations

import contextlib
import json
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

    @property
    def key(self) -> str:
        return keys.pending(self.at_ns, self.vm_id)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @staticmethod
    def decode(raw: bytes) -> Pending:
        data = json.loads(raw)
        return Pending(Op(data["op"]), data["vm_key"], data["vm_id"], data["owner"], int(data["at_ns"]))


def begin(op: Op, vm_key: str, vm_id: str, owner: str) -> Pending:
    return Pending(op, vm_key, vm_id, owner, time.time_ns())


def begin_write(pending: Pending) -> Write:
    """The write that records the operation (commit it with the operation's first state change)."""
    return Write(pending.key, pending.encode(), 0)


async def finish(store: Store, pending: Pending) -> None:
    """The operation reached its outcome: forget it (idempotent)."""
    await store.delete(pending.key)


async def adopt(store: Store, kv: KeyValue, new_owner: str) -> Pending | None:
    """Take over a dead owner's record; None when another adopter (or the owner) changed it first."""
    taken = Pending.decode(kv.value)
    mine = Pending(taken.op, taken.vm_key, taken.vm_id, new_owner, taken.at_ns)
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
        self, cls: type[T], key: str, fn: Callable[[T], T], *, known: Versioned[T] | None = None
    ) -> Versioned[T]:
        """The operation's last state change (`records.mutate`), committed together with the removal of
        the pending record: the outcome and the end of the operation are one write."""
        done = await mutate(self.store, cls, key, fn, known=known, also=[Write(self.pending.key, None)])
        self.finished = True
        return done


@contextlib.asynccontextmanager
async def driving(store: Store, pending: Pending) -> AsyncIterator[Driving]:
    """Around an operation's steps: an outcome (success or a final PlasmaError) finishes the record
    (unless `Driving.last_step` already did, in the same commit as the outcome); anything else (a
    retryable failure, the caller cancelled, a bug) releases it to the leader, which then finishes the
    operation."""
    drive = Driving(store, pending)
    try:
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
