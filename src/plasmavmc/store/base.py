"""The `Store` interface: a revisioned key-value store with compare-and-swap, transactions and watch.

Modelled on etcd v3 so that the SQLite default and the etcd backend share one contract (run by
`tests/contract/test_store_contract.py` over every implementation):

- every successful write bumps one global `revision`; each key remembers `create_revision` and
  `mod_revision` (the revision of its last write);
- `put(key, value, expected_revision=R)` is compare-and-swap on the key's `mod_revision`: R == 0 means
  "must not exist", R is None means unconditional; a lost race raises `Conflict` naming the key;
- `commit(writes)` applies several puts/deletes atomically, each with its own expectation, all or none;
  `commit(writes, op_id=X)` names the commit: the same op id committed again (a retry after an
  ambiguous failure: a lost reply, a dropped connection, a deadline) recognises its own earlier success
  and returns that commit's revision instead of failing its own compare. Op ids are remembered for at
  least `OP_ID_RETENTION` seconds; a commit with expectations and no op id gets a fresh one, so a
  backend's own resend of it is recognised the same way;
- `list(prefix)` pages in key order (`start_after`, `limit`) and reports the revision it read at;
- `watch(prefix, start_revision)` yields every change with revision >= start_revision, in order, then
  follows new ones; history older than what the store kept raises `Compacted` so the caller re-lists;
- `fence(prefix)`, for a prefix named by `track_writes`: the revision of this handle's latest write that
  changed a key under it. A watched cache of the prefix that has seen that revision holds every write
  this process made there (read-your-writes without asking the store: `core/vms/reads.py`).
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from plasmavmc.errors import ErrorCode, InvalidArgument, StoreError
from plasmavmc.store.fields import Fields, FieldsPage, check_names, picked


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Page:
    items: tuple[KeyValue, ...]
    revision: int  # the store revision the page was read at
    next_start_after: str | None  # pass as start_after for the next page; None when done


class EventType(StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    key: str
    value: bytes  # empty for DELETE
    revision: int


@dataclass(frozen=True)
class Write:
    """One write of a `commit`: a put (value is bytes) or a delete (value is None)."""

    key: str
    value: bytes | None
    expected_revision: int | None = None  # None: unconditional; 0: must not exist; R: mod_revision == R


OP_ID_RETENTION = 600.0  # seconds an applied op id is remembered at least (retries come within seconds)
_OP_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_writes(writes: Sequence[Write], op_id: str | None = None) -> None:
    """What every backend refuses before writing: empty keys, negative expectations, a key twice, an
    op id that is not 1-128 characters of letters, digits and `._:-`."""
    if op_id is not None and not _OP_ID.fullmatch(op_id):
        raise InvalidArgument("op_id", "must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
    seen: set[str] = set()
    for write in writes:
        if not write.key:
            raise InvalidArgument("key", "must not be empty")
        if write.expected_revision is not None and write.expected_revision < 0:
            raise InvalidArgument("expected_revision", "must be None, 0 or a revision")
        if write.key in seen:
            raise InvalidArgument("writes", f"key {write.key!r} appears twice in one commit")
        seen.add(write.key)


class Compacted(StoreError):
    """The watch start revision is older than the history the store keeps: re-list, then watch again."""

    code = ErrorCode.STORE_ERROR
    retryable = False


class Store(abc.ABC):
    """Async revisioned KV store. Implementations: `SqliteStore`, `EtcdStore`."""

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None: ...

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        """Write `key`; returns the new revision. Raises `Conflict` when the expectation fails."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int | None = None) -> bool:
        """Delete `key`; False when it did not exist. Raises `Conflict` when the expectation fails."""

    @abc.abstractmethod
    async def commit(self, writes: Sequence[Write], *, op_id: str | None = None, durable: bool = True) -> int:
        """Apply all writes atomically (or none, raising `Conflict`); returns the new revision.

        With `op_id`, a commit already applied under that id is not applied again: its revision is
        returned (the retry of an ambiguous failure recognises its own success).

        `durable=False` is for a write that records what can be observed again (a VM's state as its
        node reports it, ending an operation the leader's adopter would finish again): it is applied
        and visible like any other, survives a killed process, and may be lost in an OS crash or a
        power loss until the next durable commit, which makes it durable too. A store that makes
        every commit durable (etcd) treats it as any other."""

    @abc.abstractmethod
    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 0) -> Page:
        """Keys starting with `prefix`, in key order, after `start_after`; `limit` 0 means all."""

    @abc.abstractmethod
    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under `prefix` from `start_revision` on; an endless async iterator (cancel to stop)."""

    @abc.abstractmethod
    async def revision(self) -> int:
        """The current store revision."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def hasten_watches(self) -> None:
        """A reader waits for this process's own latest write to reach its watches: deliver it now, where
        the store would deliver it a little later (SQLite: after the writer has answered; etcd: as
        it comes, nothing to hasten)."""
        return

    _fences: dict[str, int] | None = None  # tracked prefix -> revision of our latest write under it

    def track_writes(self, prefix: str) -> None:
        """From now on remember, in `fence(prefix)`, the revision of the latest write under `prefix`."""
        if self._fences is None:
            self._fences = {}
        self._fences.setdefault(prefix, 0)

    def fence(self, prefix: str) -> int:
        """The revision of this handle's latest write that changed a key under the tracked `prefix`."""
        return (self._fences or {}).get(prefix, 0)

    def _wrote(self, writes: Sequence[Write], revision: int, changed: int) -> None:
        """Backends call this after each applied commit (`changed`: how many writes changed a key; a
        delete of a missing key changes nothing and makes no event, so it moves no fence)."""
        if not self._fences or not changed:
            return
        effective = writes if changed >= len(writes) else [w for w in writes if w.value is not None]
        for prefix, last in self._fences.items():
            if revision > last and any(w.key.startswith(prefix) for w in effective):
                self._fences[prefix] = revision

    async def list_fields(
        self, prefix: str, names: Sequence[str], *, start_after: str | None = None, limit: int = 0
    ) -> FieldsPage:
        """`list`, narrowed to the named top-level fields of each JSON value (`store/fields.py`).
        This default decodes each page's values in a worker thread; a backend may extract them itself."""
        check_names(names)
        page = await self.list(prefix, start_after=start_after, limit=limit)
        items = await asyncio.to_thread(_pick_all, page.items, tuple(names))
        return FieldsPage(items, page.revision, page.next_start_after)

    # `builtins.list`: inside this class body `list` names the method above, not the type.
    async def list_all(self, prefix: str, *, page_size: int = 500) -> builtins.list[KeyValue]:
        """Every key under `prefix`, read page by page."""
        out: builtins.list[KeyValue] = []
        start: str | None = None
        while True:
            page = await self.list(prefix, start_after=start, limit=page_size)
            out.extend(page.items)
            if page.next_start_after is None:
                return out
            start = page.next_start_after


def _pick_all(items: Sequence[KeyValue], names: tuple[str, ...]) -> tuple[Fields, ...]:
    return tuple(Fields(kv.key, kv.mod_revision, picked(kv.value, names)) for kv in items)
