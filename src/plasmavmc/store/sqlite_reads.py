"""The SQLite store's reads, as plain functions on a connection (each runs on one of the store's reader
threads, `sqlite.py`): a `list` page and a `list_fields` page that seek to their token, the change log
read for a watch, and one read transaction around several of them (one snapshot).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from plasmavmc.store.base import Compacted, EventType, KeyValue, Page, WatchEvent
from plasmavmc.store.fields import Fields, FieldsPage, parsed, picked

T = TypeVar("T")
WATCH_BATCH_REVISIONS = 1_000  # revisions read per watch query, so a far-behind watcher reads in chunks
KV_COLUMNS =  "key, value, create_revision, mod_revision"


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`; None when unbounded.

    SQLite compares TEXT bytewise (UTF-8), which orders like Python's code-point comparison.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1  # skip surrogates: not UTF-8
            return "".join(chars) + chr(nxt)
    return None


def row_to_kv(row: tuple[str, bytes, int, int]) -> KeyValue:
    return KeyValue(key=row[0], value=bytes(row[1]), create_revision=row[2], mod_revision=row[3])


def in_snapshot(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` inside one read transaction on `conn` so everything it reads is one snapshot."""
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


def list_query(prefix: str, start_after: str | None, limit: int) -> tuple[str, list[str]]:
    """The SELECT of one `list` page and its parameters.

    The range has ONE lower bound — the later of `prefix` and `start_after` — and one upper bound, so
    SQLite's plan seeks straight to it in the primary key (`SEARCH kv USING PRIMARY KEY (key>? AND
    key<?)`): with two lower bounds (`key >= prefix AND key > start_after`) it seeks to the prefix and
    filters the rest, and a page deep in a big listing rescans every key before it.
    """
    if start_after is not None and start_after >= prefix:
        clauses, params = ["key > ?"], [start_after]
    else:
        clauses, params = ["key >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("key < ?")
        params.append(end)
    sql = f"SELECT {KV_COLUMNS} FROM kv WHERE {' AND '.join(clauses)} ORDER BY key"
    if limit:
        sql += f" LIMIT {int(limit) + 1}"  # one more than asked tells whether another page follows
    return sql, params


def list_in(prefix: str, start_after: str | None, limit: int, conn: sqlite3.Connection) -> Page:
    revision = revision_of(conn)
    rows = conn.execute(*list_query(prefix, start_after, limit)).fetchall()
    more = bool(limit) and len(rows) > limit
    items = tuple(row_to_kv(row) for row in rows[: limit or None])
    return Page(items=items, revision=revision, next_start_after=items[-1].key if more else None)


def fields_in(
    prefix: str, names: tuple[str, ...], start_after: str | None, limit: int, conn: sqlite3.Connection
) -> FieldsPage:
    """One `list_fields` page: the same range as `list_query`, the value narrowed by `json_extract` to a
    JSON array of the fields (two paths at least, so the answer is always an array). A page holding a
    value that is not JSON makes SQLite refuse the whole statement: that page is read whole and its
    values decoded here instead (`fields.picked`), so a broken record is reported like any other."""
    revision = revision_of(conn)
    sql, params = list_query(prefix, start_after, limit)
    paths = ", ".join(f"'$.{name}'" for name in (names if len(names) > 1 else names * 2))
    narrow = sql.replace(KV_COLUMNS, f"key, mod_revision, json_extract(CAST(value AS TEXT), {paths})", 1)
    try:
        rows = conn.execute(narrow, params).fetchall()
        items = [Fields(k, int(r), parsed(a, len(names))) for k, r, a in rows]
    except sqlite3.OperationalError as err:
        if "JSON" not in str(err) and "UTF-8" not in str(err):
            raise
        rows = conn.execute(sql, params).fetchall()
        items = [Fields(k, int(r), picked(bytes(v), names)) for k, v, _, r in rows]
    return fields_page(items, revision, limit)


def revision_of(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT revision FROM meta WHERE id = 0").fetchone()[0])


def fields_page(items: list[Fields], revision: int, limit: int) -> FieldsPage:
    """The page of `items` read with one more row than `limit` (that row tells whether more follow)."""
    more = bool(limit) and len(items) > limit
    page = tuple(items[: limit or None])
    return FieldsPage(items=page, revision=revision, next_start_after=page[-1].key if more else None)


def events_from(prefix: str, start: int, conn: sqlite3.Connection) -> tuple[list[WatchEvent], int, int]:
    """Events under `prefix` in [start, stop); returns them, `stop` (where to go on) and the revision."""
    revision, compacted = conn.execute("SELECT revision, compact_revision FROM meta WHERE id = 0").fetchone()
    if start <= compacted:
        raise Compacted(
            f"watch from revision {start}: history up to revision {compacted} was compacted; re-list"
        )
    stop = min(int(revision) + 1, start + WATCH_BATCH_REVISIONS)
    clauses, params = ["revision >= ?", "revision < ?", "key >= ?"], [start, stop, prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("key < ?")
        params.append(end)
    rows = conn.execute(
        f"SELECT type, key, value, revision FROM events WHERE {' AND '.join(clauses)} ORDER BY id",
        params,
    ).fetchall()
    events = [WatchEvent(EventType(t), k, bytes(v), int(r)) for t, k, v, r in rows]
    return events, max(start, stop), int(revision)
