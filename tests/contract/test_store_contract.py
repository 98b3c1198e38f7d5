"""The `Store` contract (see `plasmavmc.store.base`), run over every implementation in `STORE_FACTORIES`.

Nothing here synchronises by sleeping: every wait on a watch has an `asyncio.wait_for` deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from plasmavmc.errors import Conflict, InvalidArgument
from plasmavmc.store import keys
from plasmavmc.store.base import Compacted, EventType, Store, WatchEvent, Write

DEADLINE = 5.0  # seconds: generous; a passing run never waits this long


class Backend(Protocol):
    """What the suite needs from the `backend` fixture (`conftest.py`)."""

    name: str
    persistent: bool

    async def open(self, *, retention: int | None = None) -> Store:
        """A new handle on this test's data; `retention` keeps only about that many recent changes."""
        ...


@contextlib.asynccontextmanager
async def watching(
    store: Store, prefix: str, start_revision: int
) -> AsyncIterator[AsyncIterator[WatchEvent]]:
    """A watch that is closed (`aclose`, as a cancelled consumer would) when the block ends."""
    watch = store.watch(prefix, start_revision)
    try:
        yield watch
    finally:
        aclose = getattr(watch, "aclose", None)
        if aclose is not None:
            await asyncio.wait_for(aclose(), DEADLINE)


async def next_event(watch: AsyncIterator[WatchEvent]) -> WatchEvent:
    return await asyncio.wait_for(anext(watch), DEADLINE)


async def take(watch: AsyncIterator[WatchEvent], n: int) -> list[tuple[EventType, str, bytes]]:
    return [(e.type, e.key, e.value) for e in [await next_event(watch) for _ in range(n)]]


def put(key: str, value: bytes) -> tuple[EventType, str, bytes]:
    return (EventType.PUT, key, value)


def deleted(key: str) -> tuple[EventType, str, bytes]:
    return (EventType.DELETE, key, b"")


# -- get / put / revisions -------------------------------------------------------------------------


async def test_get_missing_is_none(store: Store) -> None:
    assert await store.get("t/missing") is None


async def test_put_get_roundtrip(store: Store) -> None:
    value = bytes(range(256))  # arbitrary binary, including NUL
    rev = await store.put("t/a", value)
    kv = await store.get("t/a")
    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision) == ("t/a", value, rev, rev)
    assert await store.revision() == rev


async def test_revisions_increase_monotonically(store: Store) -> None:
    start = await store.revision()
    revs = [await store.put(f"t/{i % 3}", b"x") for i in range(10)]
    assert revs[0] > start
    assert all(b > a for a, b in itertools.pairwise(revs))
    assert await store.revision() == revs[-1]


async def test_create_revision_stays_mod_revision_moves(store: Store) -> None:
    first = await store.put("t/a", b"1")
    await store.put("t/other", b"x")
    second = await store.put("t/a", b"2")
    kv = await store.get("t/a")
    assert kv is not None
    assert (kv.create_revision, kv.mod_revision, kv.value) == (first, second, b"2")


async def test_recreate_after_delete_gets_new_create_revision(store: Store) -> None:
    await store.put("t/a", b"1")
    await store.delete("t/a")
    again = await store.put("t/a", b"2")
    kv = await store.get("t/a")
    assert kv is not None and kv.create_revision == again


# -- compare-and-swap --------------------------------------------------------------------------------


async def test_create_only_on_existing_key_conflicts(store: Store) -> None:
    await store.put("t/a", b"1")
    with pytest.raises(Conflict, match="t/a"):
        await store.put("t/a", b"2", expected_revision=0)
    kv = await store.get("t/a")
    assert kv is not None and kv.value == b"1"


async def test_create_only_on_missing_key_succeeds(store: Store) -> None:
    rev = await store.put("t/a", b"1", expected_revision=0)
    kv = await store.get("t/a")
    assert kv is not None and kv.create_revision == rev


async def test_cas_with_stale_revision_conflicts_and_keeps_value(store: Store) -> None:
    stale = await store.put("t/a", b"1")
    current = await store.put("t/a", b"2")
    before = await store.revision()
    with pytest.raises(Conflict, match="t/a"):
        await store.put("t/a", b"3", expected_revision=stale)
    kv = await store.get("t/a")
    assert kv is not None and (kv.value, kv.mod_revision) == (b"2", current)
    assert await store.revision() == before


async def test_cas_on_missing_key_with_revision_conflicts(store: Store) -> None:
    rev = await store.put("t/other", b"x")
    with pytest.raises(Conflict, match="t/a"):
        await store.put("t/a", b"1", expected_revision=rev)
    assert await store.get("t/a") is None


async def test_cas_with_current_revision_succeeds(store: Store) -> None:
    rev = await store.put("t/a", b"1")
    new = await store.put("t/a", b"2", expected_revision=rev)
    assert new > rev
    kv = await store.get("t/a")
    assert kv is not None and (kv.value, kv.mod_revision) == (b"2", new)


async def _race(handles: list[Store], key: str, expected: int, writers: int) -> list[int | BaseException]:
    results = await asyncio.gather(
        *(handles[i % len(handles)].put(key, f"w{i}".encode(), expected) for i in range(writers)),
        return_exceptions=True,
    )
    return list(results)


def _assert_one_winner(results: list[int | BaseException]) -> int:
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Conflict)]
    assert not unexpected, unexpected
    wins = [r for r in results if isinstance(r, int)]
    assert len(wins) == 1, f"{len(wins)} writers won one compare-and-swap"
    return wins[0]


@pytest.mark.parametrize("handles", [1, 2], ids=["one-handle", "two-handles"])
async def test_concurrent_writers_exactly_one_wins(backend: Backend, handles: int) -> None:
    stores = [await backend.open() for _ in range(handles)]
    expected = 0  # round 0 races to create the key
    for _ in range(20):
        winner = _assert_one_winner(await _race(stores, "t/race", expected, writers=50))
        kv = await stores[0].get("t/race")
        assert kv is not None and kv.mod_revision == winner
        expected = winner


async def test_concurrent_commits_each_get_their_own_revision_and_fail_alone(store: Store) -> None:
    """Many commits in flight at once (a backend may group them): each keeps its own expectations,
    revision and outcome; the stale ones fail alone and write nothing."""
    stale = await store.put("t/a", b"1")
    current = await store.put("t/a", b"2")
    fresh = [store.put(f"t/k{i}", str(i).encode(), expected_revision=0) for i in range(20)]
    doomed = [
        store.put("t/a", b"lost", expected_revision=stale),
        store.commit([Write("t/b", b"lost"), Write("t/a", None, expected_revision=stale)]),
        store.delete("t/a", expected_revision=0),
    ]
    results = await asyncio.gather(*fresh, *doomed, return_exceptions=True)
    losses = results[20:]
    assert all(isinstance(r, Conflict) for r in losses), losses
    wins = [r for r in results[:20] if isinstance(r, int)]
    assert len(set(wins)) == 20 and min(wins) > current, results[:20]
    for i, rev in enumerate(wins):
        kv = await store.get(f"t/k{i}")
        assert kv is not None and (kv.value, kv.mod_revision) == (str(i).encode(), rev)
    a = await store.get("t/a")
    assert a is not None and (a.value, a.mod_revision) == (b"2", current)
    assert await store.get("t/b") is None
    assert await store.revision() == max(wins)


# -- delete -------------------------------------------------------------------------------------------


async def test_delete_unconditional(store: Store) -> None:
    await store.put("t/a", b"1")
    assert await store.delete("t/a") is True
    assert await store.get("t/a") is None


async def test_delete_missing_returns_false_without_new_revision(store: Store) -> None:
    await store.put("t/other", b"x")
    before = await store.revision()
    assert await store.delete("t/missing") is False
    assert await store.revision() == before


async def test_delete_bumps_revision(store: Store) -> None:
    rev = await store.put("t/a", b"1")
    await store.delete("t/a")
    assert await store.revision() > rev


async def test_delete_with_expectation(store: Store) -> None:
    stale = await store.put("t/a", b"1")
    current = await store.put("t/a", b"2")
    with pytest.raises(Conflict, match="t/a"):
        await store.delete("t/a", expected_revision=stale)
    with pytest.raises(Conflict, match="t/a"):
        await store.delete("t/a", expected_revision=0)
    assert await store.get("t/a") is not None
    assert await store.delete("t/a", expected_revision=current) is True
    assert await store.get("t/a") is None


# -- commit -------------------------------------------------------------------------------------------


async def test_commit_is_all_or_nothing(store: Store) -> None:
    rev_a = await store.put("t/a", b"a1")
    await store.put("t/b", b"b1")
    before = await store.revision()
    writes = [
        Write("t/a", b"a2", expected_revision=rev_a),  # would pass
        Write("t/new", b"n", expected_revision=0),  # would pass
        Write("t/b", None, expected_revision=rev_a),  # stale: fails the whole commit
    ]
    with pytest.raises(Conflict, match="t/b"):
        await store.commit(writes)
    assert await store.revision() == before
    a, b = await store.get("t/a"), await store.get("t/b")
    assert a is not None and a.value == b"a1"
    assert b is not None and b.value == b"b1"
    assert await store.get("t/new") is None


async def test_commit_shares_one_revision(store: Store) -> None:
    rev_a = await store.put("t/a", b"a1")
    await store.put("t/gone", b"x")
    rev = await store.commit(
        [
            Write("t/a", b"a2", expected_revision=rev_a),
            Write("t/b", b"b1", expected_revision=0),
            Write("t/gone", None),
        ]
    )
    assert rev == rev_a + 2  # the put of t/gone, then ONE revision for the whole commit
    assert await store.revision() == rev
    a, b = await store.get("t/a"), await store.get("t/b")
    assert a is not None and a.mod_revision == rev and a.create_revision == rev_a
    assert b is not None and b.create_revision == b.mod_revision == rev
    assert await store.get("t/gone") is None


async def test_commit_events_share_the_revision_in_write_order(store: Store) -> None:
    start = await store.put("t/a", b"a1")
    rev = await store.commit([Write("t/z", b"z"), Write("t/a", None), Write("t/m", b"m")])
    async with watching(store, "t/", start + 1) as watch:
        events = [await next_event(watch) for _ in range(3)]
    assert [(e.type, e.key, e.revision) for e in events] == [
        (EventType.PUT, "t/z", rev),
        (EventType.DELETE, "t/a", rev),
        (EventType.PUT, "t/m", rev),
    ]


async def test_a_commit_not_made_durable_is_a_commit_like_any_other(backend: Backend) -> None:
    """`durable=False` changes when the store syncs, nothing of what a commit means: compare-and-swap,
    one revision, its event, and it is there for a handle opened after it."""
    store = await backend.open()
    rev = await store.put("t/a", b"1")
    start = rev + 1
    with pytest.raises(Conflict, match="t/a"):
        await store.commit([Write("t/a", b"x", expected_revision=rev + 100)], durable=False)
    done = await store.commit([Write("t/a", b"2", expected_revision=rev), Write("t/b", b"b")], durable=False)
    assert done == await store.revision() == rev + 1
    async with watching(store, "t/", start) as watch:
        assert await take(watch, 2) == [put("t/a", b"2"), put("t/b", b"b")]
    later = await backend.open()
    a = await later.get("t/a")
    assert a is not None and (a.value, a.mod_revision) == (b"2", done)


# -- op ids: a retried commit recognises its own success ----------------------------------------------


async def test_replayed_op_id_answers_its_revision_and_writes_nothing(backend: Backend) -> None:
    store, other = await backend.open(), await backend.open()
    writes = [Write("t/vm", b"v", expected_revision=0), Write("t/name", b"n", expected_revision=0)]
    rev = await store.commit(writes, op_id="create-1")
    # the same commit resent (by another handle too, as after a fail-over): its own earlier success,
    # not a lost compare-and-swap
    assert await store.commit(writes, op_id="create-1") == rev
    assert await other.commit(writes, op_id="create-1") == rev
    assert await store.revision() == rev
    vm = await store.get("t/vm")
    assert vm is not None and vm.mod_revision == rev


async def test_replayed_op_id_after_later_writes_changes_nothing(store: Store) -> None:
    rev = await store.commit([Write("t/a", b"1", expected_revision=0)], op_id="op-a")
    later = await store.put("t/a", b"2", expected_revision=rev)
    assert await store.commit([Write("t/a", b"1", expected_revision=0)], op_id="op-a") == rev
    kv = await store.get("t/a")
    assert kv is not None and (kv.value, kv.mod_revision) == (b"2", later)
    assert await store.revision() == later


async def test_other_op_id_still_conflicts(store: Store) -> None:
    await store.commit([Write("t/a", b"1", expected_revision=0)], op_id="op-1")
    with pytest.raises(Conflict, match="t/a"):
        await store.commit([Write("t/a", b"2", expected_revision=0)], op_id="op-2")
    kv = await store.get("t/a")
    assert kv is not None and kv.value == b"1"


async def test_failed_op_id_can_succeed_later(store: Store) -> None:
    rev = await store.put("t/a", b"1")
    with pytest.raises(Conflict):
        await store.commit([Write("t/a", b"2", expected_revision=rev + 100)], op_id="op-late")
    new = await store.commit([Write("t/a", b"2", expected_revision=rev)], op_id="op-late")
    assert new > rev


async def test_op_ids_are_invisible_to_list_and_watch(store: Store) -> None:
    start = await store.revision() + 1
    rev = await store.commit([Write("t/a", b"1", expected_revision=0)], op_id="op-hidden")
    second = await store.commit([Write("t/b", b"2", expected_revision=0)])  # an op id of its own
    assert [kv.key for kv in (await store.list("")).items] == ["t/a", "t/b"]
    pages = [await store.list("", limit=1), await store.list("", start_after="t/a", limit=1)]
    assert [kv.key for page in pages for kv in page.items] == ["t/a", "t/b"]
    async with watching(store, "", start) as watch:
        events = [await next_event(watch) for _ in range(2)]
    assert [(e.key, e.revision) for e in events] == [("t/a", rev), ("t/b", second)]


@pytest.mark.parametrize("op_id", ["", "a b", "x" * 129, "\x00", "é"])
async def test_bad_op_id_is_refused_naming_it(store: Store, op_id: str) -> None:
    with pytest.raises(InvalidArgument, match="op_id"):
        await store.commit([Write("t/a", b"1", expected_revision=0)], op_id=op_id)
    assert await store.get("t/a") is None


# -- list ---------------------------------------------------------------------------------------------


async def test_list_prefix_excludes_siblings(store: Store) -> None:
    for key in ["a/b", "a/b/1", "a/b/2", "a/bc", "a/bc/1", "a/a", "a/c", "a/b0", "b"]:
        await store.put(key, key.encode())
    page = await store.list("a/b/")
    assert [kv.key for kv in page.items] == ["a/b/1", "a/b/2"]
    assert page.next_start_after is None
    assert page.revision == await store.revision()
    assert [kv.value for kv in page.items] == [b"a/b/1", b"a/b/2"]


async def test_list_prefix_with_like_wildcards(store: Store) -> None:
    for key in ["p/50%/x", "p/50a/x", "p/50%b/x", "p/a_b/x", "p/axb/x", "p/a\\b/x"]:
        await store.put(key, b"v")
    assert [kv.key for kv in (await store.list("p/50%/")).items] == ["p/50%/x"]
    assert [kv.key for kv in (await store.list("p/a_b/")).items] == ["p/a_b/x"]
    assert [kv.key for kv in (await store.list("p/a\\")).items] == ["p/a\\b/x"]


async def test_list_non_ascii_and_empty_prefix(store: Store) -> None:
    keys = ["u/é", "u/é/1", "u/éa", "u/\U0001f600", "v"]
    for key in keys:
        await store.put(key, b"v")
    assert [kv.key for kv in (await store.list("u/é/")).items] == ["u/é/1"]
    assert [kv.key for kv in (await store.list("")).items] == sorted(keys)


async def test_list_empty(store: Store) -> None:
    page = await store.list("t/nothing/", limit=3)
    assert page.items == () and page.next_start_after is None


@pytest.mark.parametrize("limit", [1, 2, 7])
async def test_pagination_walks_every_key_once_in_order(store: Store, limit: int) -> None:
    keys = sorted(f"t/k{i:02d}" for i in range(15))
    for key in reversed(keys):
        await store.put(key, b"v")
    await store.put("t0", b"sibling")
    seen: list[str] = []
    start: str | None = None
    for _ in range(len(keys) + 1):
        page = await store.list("t/", start_after=start, limit=limit)
        assert len(page.items) <= limit
        seen.extend(kv.key for kv in page.items)
        if page.next_start_after is None:
            break
        assert page.next_start_after == page.items[-1].key
        start = page.next_start_after
    assert seen == keys


async def test_page_after_n_keys_seeks_to_its_token(store: Store) -> None:
    """A page deep in a listing is the right one: the keys right after `start_after` (an existing key,
    a key between two, a key before or past the prefix), with siblings of the prefix on both sides."""
    keys = [f"t/p/{i:04d}" for i in range(600)]
    for chunk in range(0, len(keys), 100):  # etcd takes at most 128 operations per transaction
        await store.commit([Write(key, key.encode()) for key in keys[chunk : chunk + 100]])
    await store.commit([Write("t/o", b"before"), Write("t/q", b"after")])
    for n in (0, 1, 299, 590):
        page = await store.list("t/p/", start_after=keys[n], limit=5)
        assert [kv.key for kv in page.items] == keys[n + 1 : n + 6]
        assert [kv.value for kv in page.items] == [k.encode() for k in keys[n + 1 : n + 6]]
        assert page.next_start_after == (keys[n + 5] if n + 6 < len(keys) else None)
    between = await store.list("t/p/", start_after="t/p/0299x", limit=2)  # not a key: the next ones
    assert [kv.key for kv in between.items] == keys[300:302]
    before = await store.list("t/p/", start_after="t/a", limit=2)  # before the prefix: from its start
    assert [kv.key for kv in before.items] == keys[:2]
    tail = await store.list("t/p/", start_after=keys[-2], limit=5)
    assert [kv.key for kv in tail.items] == keys[-1:] and tail.next_start_after is None
    past = await store.list("t/p/", start_after="t/p0", limit=5)  # past the prefix: nothing
    assert past.items == () and past.next_start_after is None


async def test_exact_last_page_reports_done(store: Store) -> None:
    for i in range(4):
        await store.put(f"t/{i}", b"v")
    first = await store.list("t/", limit=2)
    assert first.next_start_after == "t/1"
    last = await store.list("t/", start_after=first.next_start_after, limit=2)
    assert [kv.key for kv in last.items] == ["t/2", "t/3"]
    assert last.next_start_after is None


async def test_list_all(store: Store) -> None:
    keys = sorted(f"t/{i:03d}" for i in range(23))
    for key in keys:
        await store.put(key, key.encode())
    await store.put("t-sibling", b"x")
    items = await store.list_all("t/", page_size=5)
    assert [kv.key for kv in items] == keys
    assert all(kv.value == kv.key.encode() for kv in items)


async def test_list_fields_pages_like_list_with_only_the_named_fields(store: Store) -> None:
    values = {
        "f/a": b'{"state":"running","n":3,"node_id":null,"spec":{"state":"nested"}}',
        "f/b": b'{"state":"stopped","n":1.5,"node_id":"n-1","extra":[1,2]}',
        "f/c": b'{"n":{"deep":[true]}}',  # state missing
        "f/d": b"[1, 2]",  # JSON, not an object
        "f/e": b"not json {",
        "f/f": json.dumps({"state": "été", "n": -7, "node_id": 'n"2'}).encode(),
    }
    for key, value in values.items():
        await store.put(key, value)
    await store.put("f-sibling", b'{"state":"x"}')
    seen = []
    after: str | None = None
    while True:
        page = await store.list_fields("f/", ("state", "n", "node_id"), start_after=after, limit=2)
        assert len(page.items) <= 2 and page.revision == await store.revision()
        seen += page.items
        if page.next_start_after is None:
            break
        after = page.next_start_after
    assert [i.key for i in seen] == sorted(values)
    assert [i.values for i in seen] == [
        ("running", 3, None),
        ("stopped", 1.5, "n-1"),
        (None, {"deep": [True]}, None),
        (None, None, None),
        None,
        ("été", -7, 'n"2'),
    ]
    stored = {kv.key: kv.mod_revision for kv in await store.list_all("f/")}
    assert {i.key: i.mod_revision for i in seen} == stored
    (one,) = (await store.list_fields("f/b", ("node_id",))).items
    assert one.values == ("n-1",)


async def test_list_fields_of_vm_records_follow_every_write(store: Store) -> None:
    """The VM records' fields (SQLite keeps them in a narrow table, by triggers): the same answers as any
    prefix, after puts, updates, deletes and for values that are not JSON objects."""
    base = keys.VMS + "org/proj/"
    await store.put(base + "a", b'{"state":"running","updated_at":3,"node_id":null,"spec":{"state":"x"}}')
    rev_b = await store.put(base + "b", b'{"state":"stopped","updated_at":1,"node_id":"n-1"}')
    await store.put(base + "c", b"[1, 2]")
    await store.put(base + "d", b"not json {")
    await store.put(base + "e", b'{"state":"creating","node_id":"n-2"}')
    await store.put(base + "a", b'{"state":"stopping","updated_at":4,"node_id":"n-3"}')  # an update
    await store.delete(base + "e")
    seen = []
    after: str | None = None
    while True:
        page = await store.list_fields(keys.VMS, ("state", "updated_at", "node_id"), start_after=after, limit=3)
        seen += page.items
        if page.next_start_after is None:
            break
        after = page.next_start_after
    assert [(i.key[len(base):], i.values) for i in seen] == [
        ("a", ("stopping", 4, "n-3")), ("b", ("stopped", 1, "n-1")), ("c", (None, None, None)), ("d", None)]
    assert {i.key: i.mod_revision for i in seen} == {kv.key: kv.mod_revision for kv in await store.list_all(keys.VMS)}
    assert seen[1].mod_revision == rev_b
    (b,) = (await store.list_fields(base + "b", ("node_id", "state"))).items
    assert b.values == ("n-1", "stopped")


@pytest.mark.parametrize("names", [(), ("a b",), ("$.x",), ("x",) * 17])
async def test_list_fields_refuses_bad_names(store: Store, names: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as err:
        await store.list_fields("f/", names)
    assert err.value.field == "names"


# -- watch --------------------------------------------------------------------------------------------


async def test_watch_replays_history_then_follows(store: Store) -> None:
    start = await store.put("w/a", b"1")
    await store.put("w/b", b"2")
    await store.delete("w/a")
    async with watching(store, "w/", start) as watch:
        assert await take(watch, 3) == [put("w/a", b"1"), put("w/b", b"2"), deleted("w/a")]
        pending = asyncio.ensure_future(next_event(watch))  # waiting before the write happens
        rev = await store.put("w/c", b"3")
        event = await pending
        assert (event.type, event.key, event.value, event.revision) == (EventType.PUT, "w/c", b"3", rev)
        await store.delete("w/b")
        assert await take(watch, 1) == [deleted("w/b")]


async def test_watch_from_middle_revision(store: Store) -> None:
    await store.put("w/a", b"1")
    middle = await store.put("w/a", b"2")
    await store.put("w/a", b"3")
    async with watching(store, "w/", middle) as watch:
        events = [await next_event(watch) for _ in range(2)]
        assert [(e.value, e.revision) for e in events] == [(b"2", middle), (b"3", middle + 1)]


async def test_watch_revisions_are_increasing_without_gaps_or_repeats(store: Store) -> None:
    start = await store.revision() + 1
    async with watching(store, "w/", start) as watch:
        writer = asyncio.ensure_future(_write_many(store, 40))
        events = [await next_event(watch) for _ in range(40)]
        written = await writer
    assert [e.revision for e in events] == written
    assert [e.value for e in events] == [str(i).encode() for i in range(40)]


async def _write_many(store: Store, n: int) -> list[int]:
    revs = []
    for i in range(n):
        revs.append(await store.put(f"w/{i % 4}", str(i).encode()))
        if i % 5 == 0:
            await asyncio.sleep(0)  # let the watcher interleave with the writer (not a wait)
    return revs


async def test_watch_filters_by_prefix(store: Store) -> None:
    start = await store.revision() + 1
    async with watching(store, "w/a/", start) as watch:
        await store.put("w/b/1", b"no")
        await store.put("w/a", b"no")
        await store.put("w/ab", b"no")
        await store.put("w/a/1", b"yes")
        await store.delete("w/b/1")
        await store.delete("w/a/1")
        assert await take(watch, 2) == [put("w/a/1", b"yes"), deleted("w/a/1")]
        await store.put("w/x", b"no")
        await store.put("w/a/2", b"yes")
        assert await take(watch, 1) == [put("w/a/2", b"yes")]


async def test_watch_sees_writes_of_another_handle(backend: Backend) -> None:
    watcher, writer = await backend.open(), await backend.open()
    start = await writer.revision() + 1
    async with watching(watcher, "w/", start) as watch:
        pending = asyncio.ensure_future(next_event(watch))
        rev = await writer.put("w/a", b"from-elsewhere")
        event = await pending
        assert (event.key, event.value, event.revision) == ("w/a", b"from-elsewhere", rev)


async def test_watch_on_compacted_history_raises(backend: Backend) -> None:
    store = await backend.open(retention=3)
    first = await store.put("w/a", b"0")
    for i in range(1, 20):
        await store.put("w/a", str(i).encode())
    last = await store.revision()
    with pytest.raises(Compacted):
        await next_event(store.watch("w/", first))
    async with watching(store, "w/", last) as watch:  # recent history is still there
        event = await next_event(watch)
        assert (event.revision, event.value) == (last, b"19")


async def test_cancelled_watcher_cleans_up(store: Store) -> None:
    start = await store.put("w/a", b"1")
    got_one = asyncio.Event()
    received: list[WatchEvent] = []

    async def consume() -> None:
        async for event in store.watch("w/", start):
            received.append(event)
            got_one.set()

    task = asyncio.ensure_future(consume())
    try:
        await asyncio.wait_for(got_one.wait(), DEADLINE)
    finally:
        task.cancel()  # also when the wait failed, so no consumer outlives the test
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, DEADLINE)
    assert task.cancelled() and [e.value for e in received] == [b"1"]
    # the store is unaffected and a new watcher works
    rev = await store.put("w/b", b"2")
    async with watching(store, "w/", rev) as watch:
        assert await take(watch, 1) == [put("w/b", b"2")]


# -- persistence --------------------------------------------------------------------------------------


async def test_data_and_history_survive_reopen(backend: Backend) -> None:
    if not backend.persistent:
        pytest.skip(f"{backend.name} keeps no data once its handles are closed")
    store = await backend.open()
    created = await store.put("t/a", b"1")
    await store.commit([Write("t/b", b"2"), Write("t/c", b"3")])
    await store.delete("t/c")
    revision = await store.revision()
    await store.close()

    again = await backend.open()
    assert await again.revision() == revision
    kv = await again.get("t/a")
    assert kv is not None and (kv.value, kv.create_revision) == (b"1", created)
    assert [kv.key for kv in await again.list_all("t/")] == ["t/a", "t/b"]
    async with watching(again, "t/", created) as watch:
        assert await take(watch, 4) == [put("t/a", b"1"), put("t/b", b"2"), put("t/c", b"3"), deleted("t/c")]
    assert await again.put("t/a", b"x", expected_revision=created) == revision + 1
