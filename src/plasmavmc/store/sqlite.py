"""`SqliteStore`: the default, zero-setup `Store` on one SQLite file (stdlib `sqlite3`, WAL).

It owns the schema and the etcd-like semantics on top of it:

    kv(key, value, create_revision, mod_revision)   the current data
    meta(revision, compact_revision)                global revision; events up to compact_revision are gone
    events(id, revision, key, type, value)          the change log that `watch` replays and follows
    ops(op_id, revision, changed, at)               applied op ids (`commit(op_id=)`), kept a while

Four worker threads own one connection each, so the event loop never blocks: the *writer* applies
every write of this process, serialised, the *reader* serves point reads (get, revision, watch steps,
small list pages), so a read never queues behind a commit's fsync or an event-log compaction, and the
*scanners* serve the reads of many rows, one the whole listings and pages of 1,000 or more, the other
`list_fields`, so a point read never queues behind those, nor the narrow listing of the VM state index
behind the full listing of the watched VM copy (both run at every start). WAL lets
the readers read the last committed state while the writer writes, and a caller answered after its
commit reads that commit on any of them too. (An in-memory database exists per connection, so
`":memory:"` runs all four on the writer.)
Reads are plain functions on a connection (`sqlite_reads.py`: pages that seek to their token, the
change log for a watch). Writes are group-committed (`sqlite_writes.py`): the writer takes every write queued while the
previous batch was committing and applies them in ONE `BEGIN IMMEDIATE` transaction, each in its own
savepoint with its own expectation checks and its own revision, so a lost compare-and-swap fails
alone. The write lock is taken before any expectation is read, which keeps
compare-and-swap correct against other processes using the same file.

Durability: `synchronous=FULL` by default. WAL with NORMAL already survives a killed process; FULL also
survives an OS crash or power loss (one WAL fsync per commit). The control plane acknowledges a VM
create or delete to a user only after the write commits, and its write rate is tens per second, so the
fsync (about 2-4 ms a commit here, against 0.1 ms) is worth it; etcd too fsyncs before acknowledging.
Under load the group commit shares one fsync among every write of a batch, and a caller is answered only
after its batch committed. A batch of `durable=False` commits only (`Store.commit`: records of what a
node observed, which it would report again) commits at NORMAL: no fsync, and the next FULL commit's
fsync covers it. `synchronous="NORMAL"` (every commit so) is available for benchmarks.

`watch` follows the event log through the store's `EventTail` (`sqlite_tail.py`): one read of what is new
after each of this instance's commits, for every watcher, and a wake-up only for those with a new event
under their prefix; every `poll_interval` seconds a watcher also has the tail read (writes by another
process on the same file). A watcher the tail does not cover (behind what it keeps) reads the log itself.
Reads take whole revisions inside one read transaction and a watcher's cursor advances to the revision
read at, so no event is missed or repeated.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from plasmavmc.errors import Conflict, InvalidArgument, StoreError
from plasmavmc.store.base import (
    KeyValue,
    Page,
    Store,
    WatchEvent,
    Write,
    check_writes,
)
from plasmavmc.store.fields import FieldsPage, check_names
from plasmavmc.store.sqlite_narrow import covers, narrow_fields_in, set_up
from plasmavmc.store.sqlite_reads import KV_COLUMNS, events_from, fields_in, in_snapshot, list_in, row_to_kv
from plasmavmc.store.sqlite_tail import EventTail
from plasmavmc.store.sqlite_writes import Commit, Outcome, apply_batch

T = TypeVar("T")
_Outcomes = list[Outcome]
_Queued = tuple[Commit, "asyncio.Future[tuple[int, int]]"]  # a commit and its caller's answer

DEFAULT_RETENTION = 10_000
DEFAULT_POLL_INTERVAL = 0.2
BUSY_TIMEOUT_MS = 10_000
MAX_BATCH = 1_000  # commits per group-commit transaction
SCAN_ROWS = 1_000  # a `list` of at least this many rows (or all) runs on the scanner

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        mod_revision INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS meta (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        revision INTEGER NOT NULL,
        compact_revision INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO meta (id, revision, compact_revision) VALUES (0, 0, 0)",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        revision INTEGER NOT NULL,
        key TEXT NOT NULL,
        type TEXT NOT NULL,
        value BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_revision ON events (revision)",
    """CREATE TABLE IF NOT EXISTS ops (
        op_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        changed INTEGER NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ops_by_time ON ops (at)",
)

def _store_error(failure: BaseException | None) -> BaseException:
    """What each caller of a failed batch gets: a fresh `StoreError` for a sqlite error (or a cancelled
    job), the error itself otherwise. Nothing of a failed batch was written."""
    if failure is None:
        return StoreError("sqlite: write batch was cancelled")
    if isinstance(failure, sqlite3.Error):
        error = StoreError(f"sqlite: {failure}")
        error.__cause__ = failure
        return error
    return failure


def _heard(answer: asyncio.Future[tuple[int, int]]) -> None:
    """Mark a commit's outcome as retrieved: when its caller was cancelled (the commit is shielded and
    still applied), a Conflict it ends with would otherwise be logged as "never retrieved"."""
    if not answer.cancelled():
        answer.exception()


class SqliteStore(Store):
    """A `Store` on one SQLite database file (or `":memory:"` for throwaway use)."""

    def __init__(
        self,
        writer: _Worker,
        reader: _Worker | None = None,
        scanners: Sequence[_Worker] = (),
        *,
        retention: int = DEFAULT_RETENTION,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        synced: bool = True,
    ) -> None:
        """Use `SqliteStore.open`; each worker's connection was created on its executor's only thread.
        Without a `reader`, reads run on the writer; without `scanners` (rows, fields), on the reader."""
        if retention < 1:
            raise InvalidArgument("retention", "must keep at least one event")
        self._conn, self._executor = writer
        self._read_conn, self._read_executor = reader or writer
        self._workers = [w for w in (reader, *scanners) if w is not None]  # stopped by close()
        self._rows_scanner = scanners[0] if scanners else reader or writer
        self._fields_scanner = scanners[-1] if scanners else reader or writer
        self._retention = retention
        self._synced = synced  # every durable commit's batch fsyncs (synchronous=FULL)
        self._poll_interval = poll_interval
        self._tail = EventTail(self._events_from, self.revision)
        self._closed = False
        self._queued: list[_Queued] = []  # commits waiting for the next batch, in call order
        self._batch: asyncio.Future[_Outcomes] | None = None  # the batch being committed
        self._idle = asyncio.Event()  # set while no batch is being committed
        self._idle.set()

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        retention: int = DEFAULT_RETENTION,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
    ) -> SqliteStore:
        """Open (creating if needed) the database at `path`; `retention` is how many events to keep."""
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidArgument("synchronous", "must be NORMAL or FULL")
        writer = await _start_worker("writer", functools.partial(_connect, str(path), synchronous), path)
        synced = synchronous == "FULL"
        if str(path) == ":memory:":
            store = cls(writer, retention=retention, poll_interval=poll_interval, synced=synced)
        else:
            readers: list[_Worker] = []
            try:
                for role in ("reader", "rows-scanner", "fields-scanner"):
                    readers.append(await _start_worker(role, functools.partial(_connect_reader, str(path)), path))
            except BaseException:
                for worker in (*readers, writer):
                    await _stop_worker(worker)
                raise
            store = cls(writer, readers[0], readers[1:], retention=retention, poll_interval=poll_interval,
                        synced=synced)
        try:
            store._tail.start(await store.revision())
        except BaseException:
            await store.close()
            raise
        return store

    # -- plumbing -----------------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run the read `fn(*args)` on the worker thread; sqlite errors become `StoreError`."""
        if self._closed:
            raise StoreError("sqlite store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_executor, functools.partial(fn, *args))
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _scan(self, fn: Callable[[sqlite3.Connection], T], worker: _Worker) -> T:
        """Run the read `fn(conn)` of many rows (a whole listing, a big page, narrow field lists) in one
        snapshot on a *scanner*: a rebuild of 100,000 records after a restart never queues the point
        reads (get, revision, a watch step, an API page) behind it."""
        if self._closed:
            raise StoreError("sqlite store is closed")
        conn, executor = worker
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, in_snapshot, conn, fn)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _events_from(self, start: int) -> tuple[list[WatchEvent], int, int]:
        """The event log of every key from revision `start` (the tail's read)."""
        return await self._run(self._read, functools.partial(events_from, "", start))

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` inside one read transaction so everything it reads is one snapshot."""
        return in_snapshot(self._read_conn, fn)

    # -- reads ----------------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        return await self._run(self._get_sync, key)

    def _get_sync(self, key: str) -> KeyValue | None:
        row = self._read_conn.execute(f"SELECT {KV_COLUMNS} FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row_to_kv(row)

    async def revision(self) -> int:
        return await self._run(self._revision_sync)

    def _revision_sync(self) -> int:
        return int(self._read_conn.execute("SELECT revision FROM meta WHERE id = 0").fetchone()[0])

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 0) -> Page:
        if limit < 0:
            raise InvalidArgument("limit", "must be >= 0 (0 means all)")
        read = functools.partial(list_in, prefix, start_after, limit)
        big = limit == 0 or limit >= SCAN_ROWS
        return await (self._scan(read, self._rows_scanner) if big else self._run(self._read, read))

    async def list_fields(
        self, prefix: str, names: Sequence[str], *, start_after: str | None = None, limit: int = 0
    ) -> FieldsPage:
        """The fields are extracted in SQL (`json_extract`, without the GIL) on the fields scanner."""
        if limit < 0:
            raise InvalidArgument("limit", "must be >= 0 (0 means all)")
        check_names(names)
        narrow = narrow_fields_in if covers(prefix, names) else fields_in  # the VM records: a small table
        read = functools.partial(narrow, prefix, tuple(names), start_after, limit)
        return await self._scan(read, self._fields_scanner)

    # -- writes ---------------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        revision, _ = await self._commit([Write(key, bytes(value), expected_revision)])
        return revision

    async def delete(self, key: str, expected_revision: int | None = None) -> bool:
        _, changed = await self._commit([Write(key, None, expected_revision)])
        return changed > 0

    async def commit(self, writes: Sequence[Write], *, op_id: str | None = None, durable: bool = True) -> int:
        revision, _ = await self._commit(writes, op_id, durable)
        return revision

    async def _commit(self, writes: Sequence[Write], op_id: str | None = None,
                      durable: bool = True) -> tuple[int, int]:
        """`commit`, also returning how many writes changed something (deletes of missing keys don't).

        The commit joins the queue of the next batch (`sqlite_writes.apply_batch`); the caller is
        answered once that batch committed. Shielded: a cancelled caller's commit is still applied.
        """
        check_writes(writes, op_id)
        if self._closed:
            raise StoreError("sqlite store is closed")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, int]] = loop.create_future()
        answer.add_done_callback(_heard)  # a cancelled caller's lost CAS is nobody's error to log
        self._queued.append((Commit(tuple(writes), op_id, durable), answer))
        if self._batch is None:
            self._start_batch(loop)
        revision, changed = await asyncio.shield(answer)
        self._wrote(writes, revision, changed)
        return revision, changed

    def _start_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand every queued commit (up to `MAX_BATCH`) to the worker thread as one transaction."""
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        job = loop.run_in_executor(
            self._executor, apply_batch, self._conn, [commit for commit, _ in batch], self._retention,
            self._synced,
        )
        self._batch = job
        self._idle.clear()
        job.add_done_callback(functools.partial(self._batch_done, loop, batch))

    def _batch_done(
        self, loop: asyncio.AbstractEventLoop, batch: Sequence[_Queued], job: asyncio.Future[_Outcomes]
    ) -> None:
        """Answer every caller of a finished batch, wake watchers, start the next batch if one queued."""
        self._batch = None
        failure = None if job.cancelled() else job.exception()
        if job.cancelled() or failure is not None:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(_store_error(failure))
        else:
            for (_, answer), outcome in zip(batch, job.result(), strict=True):
                if answer.done():
                    continue
                if isinstance(outcome, Conflict):
                    answer.set_exception(outcome)
                else:
                    answer.set_result(outcome)
        self._tail.kick_soon()
        if self._queued:
            self._start_batch(loop)
        else:
            self._idle.set()

    # -- watch ----------------------------------------------------------------------------------------

    def hasten_watches(self) -> None:
        if not self._closed:
            self._tail.kick()

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under `prefix` with revision >= `start_revision`; `start_revision` <= 0 means "from
        the next write on" (etcd's convention). Raises `Compacted` when that history is gone."""
        return self._watch(prefix, start_revision)

    async def _watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        next_revision = start_revision if start_revision > 0 else await self.revision() + 1
        wake = self._tail.waiter(prefix)
        try:
            while True:
                if self._closed:
                    raise StoreError("sqlite store is closed")
                wake.clear()  # before reading: an event read meanwhile still wakes us
                events, next_revision, caught_up = await self._events_under(prefix, next_revision)
                for event in events:
                    yield event
                if not caught_up:
                    continue  # a big backlog is read in chunks, without waiting
                try:
                    async with asyncio.timeout(self._poll_interval):
                        await wake.wait()
                except TimeoutError:  # poll: another process may have written
                    await self._tail.refresh(min_age=self._poll_interval / 2)
        finally:
            self._tail.forget(wake)

    async def _events_under(self, prefix: str, start: int) -> tuple[Sequence[WatchEvent], int, bool]:
        """The events under `prefix` from revision `start`: from the tail when it covers `start` (while it
        reads a backlog, after its next read: a watcher never spins on the loop), else from the log itself;
        with the revision to go on from, and whether that is as far as the store has gone."""
        tail = self._tail
        if tail.covers(start):
            if tail.next <= tail.current:
                await tail.refresh(min_age=0.0)
                if not tail.covers(start):
                    return [], start, False
            return tail.events(prefix, start), tail.next, tail.next > tail.current
        events, stop, current = await self._run(self._read, functools.partial(events_from, prefix, start))
        return events, stop, stop > current

    # -- lifecycle -----------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()  # every queued commit is applied (and answered) first
        try:
            for worker in reversed(self._workers):
                await _stop_worker(worker)
            await _stop_worker((self._conn, self._executor))
        finally:
            self._tail.close()  # watchers waiting for a change see the closed store at once


_Worker = tuple[sqlite3.Connection, ThreadPoolExecutor]  # a connection and the only thread that uses it


async def _start_worker(role: str, connect: Callable[[], sqlite3.Connection], path: Path | str) -> _Worker:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"plasmavmc-sqlite-{role}")
    try:
        conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
    except sqlite3.Error as exc:
        executor.shutdown(wait=False)
        raise StoreError(f"cannot open sqlite store {str(path)!r}: {exc}") from exc
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return conn, executor


async def _stop_worker(worker: _Worker) -> None:
    conn, executor = worker
    try:
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite: closing failed: {exc}") from exc
    finally:
        executor.shutdown(wait=True)


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every transaction here is explicit.
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            conn.execute(statement)
        set_up(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the database `_connect` opened (and set up)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn
