"""SqliteStore's narrow table of the VM records (`store/sqlite_narrow.py`): a database made before it
existed is filled when opened, the VM records' `list_fields` read it and not the records (counted in
the statements it runs), and other prefixes are untouched by it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.store.sqlite_narrow import TABLE, narrow_fields_in
from plasmavmc.store.sqlite_reads import fields_in

VM = keys.VMS + "o/p/"
NAMES = ("state", "updated_at", "node_id")


def _record(i: int) -> bytes:
    return (b'{"state":"running","updated_at":%d,"node_id":"n-%d","spec":{"pad":"%s"}}'
            % (i, i % 7, b"x" * 1200))


async def _fill(path: Path, count: int) -> None:
    store = await SqliteStore.open(path)
    try:
        await store.commit([Write(f"{VM}{i:05d}", _record(i)) for i in range(count)])
        await store.put("images/x", b'{"state":"ready"}')
    finally:
        await store.close()


async def test_an_older_database_is_filled_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await _fill(path, 50)
    with sqlite3.connect(path) as conn:  # as a version without the table left it
        conn.execute(f"DROP TABLE {TABLE}")
    store = await SqliteStore.open(path)
    try:
        page = await store.list_fields(keys.VMS, NAMES)
        assert [i.values for i in page.items] == [("running", i, f"n-{i % 7}") for i in range(50)]
        await store.put(f"{VM}00003", b'{"state":"stopped","updated_at":9}')
        (three,) = (await store.list_fields(f"{VM}00003", ("state", "node_id"))).items
        assert three.values == ("stopped", None)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 50  # nothing but VM records


def _statements(conn: sqlite3.Connection) -> list[str]:
    """The statements `narrow_fields_in` runs for a whole listing of the VM records."""
    run: list[str] = []
    conn.set_trace_callback(run.append)
    try:
        page = narrow_fields_in(keys.VMS, NAMES, None, 0, conn)
    finally:
        conn.set_trace_callback(None)
    assert len(page.items) == 400
    assert page.items == fields_in(keys.VMS, NAMES, None, 0, conn).items  # the same answer as from the records
    return run


async def test_the_vm_fields_are_read_without_reading_the_records(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await _fill(path, 400)
    with sqlite3.connect(path) as conn:
        run = _statements(conn)
        assert any(f"FROM {TABLE}" in sql for sql in run)
        assert not any("FROM kv" in sql for sql in run), run
        conn.execute("UPDATE kv SET value = ? WHERE key = ?", (b"not json {", f"{VM}00007"))
        run = _statements(conn)
        assert [sql for sql in run if "FROM kv" in sql] == [f"SELECT value FROM kv WHERE key = '{VM}00007'"]
