"""`NodeRegistry.list` (under every heartbeat-expiry pass, ListNodes and the node gauges) decodes only the
node records that changed since its last listing: an idle fleet's passes decode none, yet a changed,
deleted or unreadable record is seen as the store has it (on a real SQLite store)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plasmavmc.core.nodes import registry
from plasmavmc.store import keys
from plasmavmc.store.base import KeyValue
from plasmavmc.store.records import Versioned, replace
from plasmavmc.types import codec
from plasmavmc.types.node import Node
from tests.core_harness import add_node, make_core


async def test_only_changed_node_records_are_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    core = await make_core(tmp_path)
    decoded: list[str] = []
    original = registry._decode_nodes

    def counted(kvs: Sequence[KeyValue]) -> list[tuple[KeyValue, Versioned[Node] | None]]:
        decoded.extend(kv.key for kv in kvs)
        return original(kvs)

    monkeypatch.setattr(registry, "_decode_nodes", counted)
    try:
        nodes = [await add_node(core, f"n-{i}") for i in range(5)]
        first = await core.nodes.list()
        assert sorted(n.value.id for n in first) == [n.id for n in nodes] and len(decoded) == 5
        decoded.clear()
        again = await core.nodes.list()
        assert decoded == [] and [n.value for n in again] == [n.value for n in first]  # nothing changed

        changed = replace(nodes[1], labels={"rack": "r7"})
        await core.store.put(keys.node("n-1"), codec.dumps(changed))
        await core.store.delete(keys.node("n-2"))
        await core.store.put(keys.node("n-3"), b"{not a node")
        listed = {n.value.id: n.value for n in await core.nodes.list()}
        assert decoded == [keys.node("n-1"), keys.node("n-3")]  # the changed ones only
        assert sorted(listed) == ["n-0", "n-1", "n-4"]  # deleted and unreadable are out
        assert listed["n-1"].labels == {"rack": "r7"}
        assert await core.store.get(keys.QUARANTINE + "nodes/n-3") is not None  # moved aside, as before
    finally:
        await core.store.close()
