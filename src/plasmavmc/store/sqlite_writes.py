"""The write path of `SqliteStore`: group commit of queued writes in one SQLite transaction.

`apply_batch` runs on the store's worker thread. It takes every commit queued since the last batch
and applies them inside ONE `BEGIN IMMEDIATE` transaction, so the whole batch costs one WAL fsync
(`synchronous=FULL`) instead of one per commit, and a batch of `durable=False` commits only none (the
next durable batch's fsync covers it). Each commit keeps its own semantics:

- its expectations are checked against the data as the commits before it in the batch left it (they
  run in the same transaction, in queue order), under the write lock, so compare-and-swap stays exact
  against other processes on the same file too;
- it runs inside its own SAVEPOINT: a commit whose expectation fails is rolled back alone and its
  caller gets `Conflict`, while the rest of the batch commits;
- it gets its own revision (one per commit, shared by its writes), in queue order; a commit that
  changes nothing (deletes of missing keys) gets no new revision.

A commit with an op id that the `ops` table already holds is not applied again: its outcome is the
revision and change count recorded when it was (a retry recognising its own success). Op ids older than
`OP_ID_RETENTION` are forgotten, a batch at a time.

Callers are answered only after the batch's COMMIT returned; when the transaction itself fails (a
sqlite error), every commit of the batch fails and nothing of it was written.

Event-log compaction runs at most once per batch and only when the log exceeds the retention by a
slack (`compaction_slack`), deleting a whole slack of old history at once instead of a few rows per
write: the log keeps between `retention` and `retention + slack` events, never fewer than `retention`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from plasmavmc.errors import Conflict
from plasmavmc.store.base import OP_ID_RETENTION, EventType, Write

#: one commit's outcome: (revision, how many writes changed something), or the Conflict it raised
Outcome = tuple[int, int] | Conflict

_SAVEPOINT = "plasmavmc_write"


@dataclass(frozen=True)
class Commit:
    """One queued `commit`: its writes, its op id (None: not named) and whether its batch must fsync."""

    writes: tuple[Write, ...]
    op_id: str | None = None
    durable: bool = True


def compaction_slack(retention: int) -> int:
    """How far past the retention the event log may grow before it is compacted (about a tenth)."""
    return max(1, retention // 10)


def apply_batch(conn: sqlite3.Connection, batch: Sequence[Commit], retention: int,
                synced: bool = True) -> list[Outcome]:
    """Apply every commit of `batch` in one transaction; one outcome per commit, in order. With `synced`
    (the store's synchronous=FULL), the transaction fsyncs unless no commit of the batch is durable."""
    if synced:  # a connection setting, read at COMMIT: NORMAL leaves the WAL unsynced (the next FULL syncs it)
        conn.execute(f"PRAGMA synchronous = {'FULL' if any(c.durable for c in batch) else 'NORMAL'}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = time.time()
        conn.execute("DELETE FROM ops WHERE at < ?", (now - OP_ID_RETENTION,))
        start = revision = int(conn.execute("SELECT revision FROM meta WHERE id = 0").fetchone()[0])
        outcomes: list[Outcome] = []
        for commit in batch:
            replayed = _replayed(conn, commit.op_id)
            if replayed is not None:
                outcomes.append(replayed)
                continue
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                changed = _apply_one(conn, commit.writes, revision + 1)
            except Conflict as conflict:
                conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                conn.execute(f"RELEASE {_SAVEPOINT}")
                outcomes.append(conflict)
                continue
            conn.execute(f"RELEASE {_SAVEPOINT}")
            if changed:
                revision += 1
            outcomes.append((revision, changed))
            if commit.op_id is not None:
                conn.execute(
                    "INSERT INTO ops (op_id, revision, changed, at) VALUES (?, ?, ?, ?)",
                    (commit.op_id, revision, changed, now),
                )
        if revision != start:
            conn.execute("UPDATE meta SET revision = ? WHERE id = 0", (revision,))
            _maybe_compact(conn, retention)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _replayed(conn: sqlite3.Connection, op_id: str | None) -> Outcome | None:
    """The recorded outcome of an op id already applied, or None."""
    if op_id is None:
        return None
    row = conn.execute("SELECT revision, changed FROM ops WHERE op_id = ?", (op_id,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _apply_one(conn: sqlite3.Connection, writes: tuple[Write, ...], new: int) -> int:
    """Check every expectation of one commit, then write it at revision `new`; returns how many writes
    changed something (0: nothing was written and `new` is not used)."""
    existing: set[str] = set()
    for write in writes:
        row = conn.execute("SELECT mod_revision FROM kv WHERE key = ?", (write.key,)).fetchone()
        found = 0 if row is None else int(row[0])
        if write.expected_revision is not None and write.expected_revision != found:
            raise Conflict(
                f"compare-and-swap lost on key {write.key!r}: "
                f"expected revision {write.expected_revision}, found {found or 'no key'}"
            )
        if found:
            existing.add(write.key)
    effective = [w for w in writes if w.value is not None or w.key in existing]
    for write in effective:
        _write_one(conn, write, new)
    return len(effective)


def _write_one(conn: sqlite3.Connection, write: Write, revision: int) -> None:
    if write.value is None:
        conn.execute("DELETE FROM kv WHERE key = ?", (write.key,))
        event = (revision, write.key, EventType.DELETE.value, b"")
    else:
        conn.execute(
            "INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
            (write.key, write.value, revision, revision),
        )
        event = (revision, write.key, EventType.PUT.value, write.value)
    conn.execute("INSERT INTO events (revision, key, type, value) VALUES (?, ?, ?, ?)", event)


def _maybe_compact(conn: sqlite3.Connection, retention: int) -> None:
    """Drop whole revisions of history older than the last `retention` events, once the log holds more
    than `retention + compaction_slack(retention)` events.

    Event ids only grow and only the oldest are deleted, so ids stay contiguous and the cut is found
    by arithmetic, not by counting rows.
    """
    # two scalar subqueries: SQLite answers a lone MIN or MAX from the rowid's b-tree, but a query with
    # both aggregates scans the whole log (milliseconds per commit at the default retention)
    low, high = conn.execute("SELECT (SELECT MIN(id) FROM events), (SELECT MAX(id) FROM events)").fetchone()
    if low is None or high - low + 1 <= retention + compaction_slack(retention):
        return
    keep_from = conn.execute("SELECT revision FROM events WHERE id = ?", (high - retention + 1,)).fetchone()
    if keep_from is None or int(keep_from[0]) <= 1:
        return
    cut = int(keep_from[0])
    conn.execute("DELETE FROM events WHERE revision < ?", (cut,))
    conn.execute("UPDATE meta SET compact_revision = MAX(compact_revision, ?) WHERE id = 0", (cut - 1,))
