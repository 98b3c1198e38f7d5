"""Typed records over the `Store`: read with revision, write with compare-and-swap.

`Versioned` pairs a domain record with the store revision it was read at; every write passes that
revision back as the expectation, so two writers can never both win. `mutate()` is the retry loop for
read-modify-write: the function it applies may raise (e.g. INVALID_STATE), and then nothing is written.
A record type may have a deriver (`on_change`): writes that describe a change (VM events), computed
from the old and new record and committed with it.
Both retry loops back off (jittered, growing to `MAX_BACKOFF`) after each lost race, so writers of one
hot record (a node, a quota) take turns instead of spinning until they give up with CONFLICT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from plasmavmc.errors import Conflict, NotFound, PlasmaError
from plasmavmc.store.base import KeyValue, Store, Write
from plasmavmc.store.cas import MAX_BACKOFF, MAX_CAS_RETRIES, attempts, backoff
from plasmavmc.types import codec

T = TypeVar("T")
__all__ = ["MAX_BACKOFF", "MAX_CAS_RETRIES", "Versioned", "backoff", "decode", "mutate", "read", "replace",
           "retry_on_conflict"]


Deriver = Callable[[Any, Any], Sequence[Write]]
_DERIVERS: dict[type, Deriver] = {}


def on_change(cls: type[T], deriver: Callable[[T, T], Sequence[Write]]) -> None:
    """Commit `deriver(old, new)`'s writes with every `mutate` of a `cls` record."""
    _DERIVERS[cls] = deriver


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    revision: int
    key: str


def decode(cls: type[T], kv: KeyValue) -> Versioned[T]:
    return Versioned(codec.loads(cls, kv.value), kv.mod_revision, kv.key)


async def read(store: Store, cls: type[T], key: str) -> Versioned[T] | None:
    kv = await store.get(key)
    return None if kv is None else decode(cls, kv)


async def mutate(
    store: Store,
    cls: type[T],
    key: str,
    fn: Callable[[T], T],
    *,
    missing: Callable[[], Exception] = lambda: NotFound("record not found"),
    known: Versioned[T] | None = None,
    also: Sequence[Write] = (),
) -> Versioned[T]:
    """Read `key`, apply `fn`, write back with CAS; retry on conflict. `fn` may raise to abort.
    `known` (the record as the caller last wrote it) saves the first read; only the stored record
    decides: a stale copy loses the compare-and-swap, and a copy `fn` refuses or leaves unchanged is
    read again. `also` is committed with the record's write (alone if the record needs no change)."""
    for attempt in attempts(key):
        guessed, current, known = known is not None, known or await read(store, cls, key), None
        if current is None:
            raise missing()
        try:
            updated = fn(current.value)
        except PlasmaError:
            if guessed:
                continue  # judged on the caller's copy: judge again on the record
            raise
        if updated == current.value:
            if guessed:
                continue
            if also:
                await store.commit(also)
            return current
        derive = _DERIVERS.get(cls)
        derived = derive(current.value, updated) if derive is not None else ()
        try:
            rev = await store.commit([Write(key, codec.dumps(updated), current.revision), *also, *derived])
        except Conflict:
            await backoff(attempt)
            continue
        return Versioned(updated, rev, key)
    raise AssertionError("unreachable: attempts() raises when exhausted")


async def retry_on_conflict(op: Callable[[], Awaitable[T]]) -> T:
    """Run a read-then-commit operation again while it loses compare-and-swap races."""
    for attempt in range(MAX_CAS_RETRIES - 1):
        try:
            return await op()
        except Conflict:
            await backoff(attempt)
    return await op()


def replace(obj: T, **changes: object) -> T:
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
