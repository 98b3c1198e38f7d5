"""Typed records over the `Store`: read with revision, write with compare-and-swap.

`Versioned` pairs a domain record with the store revision it was read at; every write passes that
revision back as the expectation, so two writers can never both win. `mutate()` is the retry loop for
read-modify-write: the function it applies may raise (e.g. INVALID_STATE), and then nothing is written.
A record type may have a deriver (`on_change`): writes that describe a change (VM events), computed
from the old and new record and committed with it.
Both retry loops back off (jittered, growing to `MAX_BACKOFF`) after each lost race, so writers of one
hot record (a node, a quota) take turns instead of spinning until they give up with CONFLICT.

A stored record that does not decode (written by a bug, an older release or by hand) raises
`CorruptRecord` where one record is read, and is skipped where many are (`decode_all`): either way it is
logged and counted in `plasmavmc_corrupt_records_total`, so one bad record never takes down a list, a
probe or a loop. `quarantine()` moves such a record aside under `keys.QUARANTINE` where the
record can be re-created from its source (a node's next heartbeat).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from plasmavmc.errors import Conflict, NotFound, PlasmaError
from plasmavmc.observe.metrics import CORRUPT_RECORDS
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue, Store, Write
from plasmavmc.store.cas import MAX_BACKOFF, MAX_CAS_RETRIES, attempts, backoff
from plasmavmc.types import codec

T = TypeVar("T")
log = logging.getLogger(__name__)
__all__ = ["MAX_BACKOFF", "MAX_CAS_RETRIES", "CorruptRecord", "Versioned", "backoff", "decode", "decode_all",
           "derived", "mutate", "quarantine", "read", "replace", "retry_on_conflict"]


Deriver = Callable[[Any, Any], Sequence[Write]]
_DERIVERS: dict[type, list[Deriver]] = {}


def on_change(cls: type[T], deriver: Callable[[T, T], Sequence[Write]]) -> None:
    """Commit `deriver(old, new)`'s writes with every `mutate` of a `cls` record (derivers add up)."""
    if deriver not in _DERIVERS.setdefault(cls, []):
        _DERIVERS[cls].append(deriver)


def derived(cls: type[T], old: T, new: T) -> list[Write]:
    """Every registered deriver's writes for the change `old` -> `new` of a `cls` record."""
    return [w for derive in _DERIVERS.get(cls, ()) for w in derive(old, new)]


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    revision: int
    key: str


class CorruptRecord(PlasmaError):
    """A stored record that does not decode as its type."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"stored record {key} is unreadable ({why}); it is reported and skipped")
        self.key = key


def decode(cls: type[T], kv: KeyValue) -> Versioned[T]:
    try:
        return Versioned(codec.loads(cls, kv.value), kv.mod_revision, kv.key)
    except Exception as exc:
        CORRUPT_RECORDS.labels(cls.__name__).inc()
        log.error("stored %s record %s does not decode: %s: %s", cls.__name__, kv.key, type(exc).__name__, exc)
        raise CorruptRecord(kv.key, type(exc).__name__) from exc


def decode_all(cls: type[T], kvs: Iterable[KeyValue]) -> list[Versioned[T]]:
    """Every record of `kvs` that decodes; the others are reported (by `decode`) and left out."""
    out = []
    for kv in kvs:
        with contextlib.suppress(CorruptRecord):
            out.append(decode(cls, kv))
    return out


async def quarantine(store: Store, kv: KeyValue) -> None:
    """Move an unreadable record aside (same bytes under `keys.QUARANTINE`), unless it changed meanwhile."""
    aside = keys.QUARANTINE + kv.key.removeprefix(keys.ROOT)
    try:
        await store.commit([Write(aside, kv.value, None), Write(kv.key, None, kv.mod_revision)])
    except Conflict:
        return  # rewritten meanwhile: the new record is judged when next read
    log.warning("moved unreadable record %s aside to %s", kv.key, aside)


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
    durable: bool = True,
) -> Versioned[T]:
    """Read `key`, apply `fn`, write back with CAS; retry on conflict. `fn` may raise to abort.
    `known` (the record as the caller last wrote it) saves the first read; only the stored record
    decides: a stale copy loses the compare-and-swap, and a copy `fn` refuses or leaves unchanged is
    read again. `also` is committed with the record's write (alone if the record needs no change).
    `durable` as `Store.commit`'s."""
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
                await store.commit(also, durable=durable)
            return current
        extra = derived(cls, current.value, updated)
        try:
            rev = await store.commit([Write(key, codec.dumps(updated), current.revision), *also, *extra],
                                     durable=durable)
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
