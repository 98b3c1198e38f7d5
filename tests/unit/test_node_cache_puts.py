"""The scheduler's node cache takes nodes one by one as heartbeats read or write them (a fleet
registering after a restart) without rebuilding its sorted views per node: the views are rebuilt once,
when next asked for, and hold every node put, in id order, each as last put."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.scheduler.cache import NodeCache
from plasmavmc.store import keys
from plasmavmc.store.records import Versioned, replace
from plasmavmc.types.node import Node
from tests.core_harness import add_node, make_core


async def test_nodes_put_one_by_one_are_in_the_views_once_asked(tmp_path: Path) -> None:
    core = await make_core(tmp_path)
    try:
        nodes = [await add_node(core, f"n-{i:03d}") for i in reversed(range(40))]
        cache = NodeCache(core.store)
        rebuilds = 0
        original = cache._rebuild

        def counted() -> None:
            nonlocal rebuilds
            rebuilds += 1
            original()

        cache._rebuild = counted  # type: ignore[method-assign]
        for node in nodes:
            kv = await core.store.get(keys.node(node.id))
            assert kv is not None
            cache.put(Versioned(node, kv.mod_revision, kv.key))
        assert rebuilds == 0  # not once per node
        views = await cache.views()
        assert [v.node.id for v in views] == sorted(n.id for n in nodes)
        first = cache.get("n-000")
        assert first is not None
        cache.put(Versioned(replace(first[0].value, labels={"x": "y"}), first[0].revision + 1, first[0].key))
        assert (await cache.views())[0].node.labels == {"x": "y"}  # a known node's view is updated in place
        assert isinstance((await cache.views())[0].node, Node)
    finally:
        await core.store.close()
