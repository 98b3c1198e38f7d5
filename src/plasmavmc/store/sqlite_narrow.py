"""The SQLite store's narrow copy of the VM records: a few top-level JSON fields of each, kept by triggers.

The VM state index (`core/loops/vm_states.py`: the gauges, the per-node index), the reconcile pass and
the gauges' fallback read `list_fields(keys.VMS, ...)` of every VM record. On the `kv` table that scans
every record (about 1.4 KB each: 150 MB at 100,000 VMs) and parses each one's JSON, which made the
index the longest part of a restart (issue 19: gauges right only 8 s after it). This table keeps, per
VM record, its `mod_revision` and `NARROW_FIELDS` as one JSON array (about 100 bytes), written by
triggers on `kv` in the same transaction as the record itself, so it is never behind, after any crash.

A value that is not a JSON object keeps NULL here; a read of it falls back to the record (`fields_in`
reports it as it always did). A database made before this table existed is filled once, when it is
opened (`SCHEMA_STEPS`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from plasmavmc.store import keys
from plasmavmc.store.fields import Fields, FieldsPage, parsed, picked
from plasmavmc.store.sqlite_reads import KV_COLUMNS, fields_page, list_query, prefix_end, revision_of

TABLE = "narrow_vms_v1"  # a new set of fields is a new table (and a backfill)
NARROW_PREFIX = keys.VMS
NARROW_FIELDS = ("state", "updated_at", "node_id")


def _bounds(row: str) -> str:
    end = prefix_end(NARROW_PREFIX)
    assert end is not None and "'" not in NARROW_PREFIX + end
    return f"{row}.key >= '{NARROW_PREFIX}' AND {row}.key < '{end}'"


def _extract(value: str) -> str:
    paths = ", ".join(f"'$.{name}'" for name in NARROW_FIELDS)
    text = f"CAST({value} AS TEXT)"
    return f"CASE WHEN json_valid({text}) THEN json_extract({text}, {paths}) END"


# an upsert, not INSERT OR REPLACE: a trigger's conflict clause gives way to its outer statement's
_UPSERT = (f"INSERT INTO {TABLE} (key, mod_revision, fields) VALUES (new.key, new.mod_revision, "
           f"{_extract('new.value')}) ON CONFLICT (key) DO UPDATE SET mod_revision = excluded.mod_revision, "
           "fields = excluded.fields;")

SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, mod_revision INTEGER NOT NULL, fields TEXT)"
    " WITHOUT ROWID",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_insert AFTER INSERT ON kv WHEN {_bounds('new')} BEGIN {_UPSERT} END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_update AFTER UPDATE ON kv WHEN {_bounds('new')} BEGIN {_UPSERT} END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_delete AFTER DELETE ON kv WHEN {_bounds('old')} "
    f"BEGIN DELETE FROM {TABLE} WHERE key = old.key; END",
)
BACKFILL = (f"INSERT INTO {TABLE} (key, mod_revision, fields) "
            f"SELECT key, mod_revision, {_extract('value')} FROM kv WHERE {_bounds('kv')}")


def set_up(conn: sqlite3.Connection) -> None:
    """Create the table and its triggers (in the caller's write transaction); fill it from `kv` when it is
    new, so a database of an older version starts with every record in it."""
    new = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is None
    for statement in SCHEMA:
        conn.execute(statement)
    if new:
        conn.execute(BACKFILL)


def covers(prefix: str, names: Sequence[str]) -> bool:
    return prefix.startswith(NARROW_PREFIX) and all(name in NARROW_FIELDS for name in names)


def narrow_fields_in(prefix: str, names: Sequence[str], start_after: str | None, limit: int,
                     conn: sqlite3.Connection) -> FieldsPage:
    """A `list_fields` page from the narrow table (`covers` must hold), as `sqlite_reads.fields_in` reads
    it from `kv`. A record kept as NULL (not JSON) is read from `kv` and picked as before."""
    revision = revision_of(conn)
    sql, params = list_query(prefix, start_after, limit)
    sql = sql.replace(f"SELECT {KV_COLUMNS} FROM kv", f"SELECT key, mod_revision, fields FROM {TABLE}", 1)
    where = [NARROW_FIELDS.index(name) for name in names]
    items = []
    for key, mod_revision, array in conn.execute(sql, params).fetchall():
        if array is None:
            value = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            values = picked(bytes(value[0]), names) if value is not None else None
        else:
            every = parsed(array, len(NARROW_FIELDS))
            values = None if every is None else tuple(every[i] for i in where)
        items.append(Fields(key, int(mod_revision), values))
    return fields_page(items, revision, limit)
