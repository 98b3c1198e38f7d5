"""The VM gauges while a replica's state index is still being built (after a start): left out, never
wrong, and no scrape scans every record meanwhile; once built, the counts. The index is built from the
store's narrow field listing (`Store.list_fields`), and a record that does not read is left out of it.
Real SQLite store, real core (tests/core_harness.py)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from plasmavmc.core import gauges
from plasmavmc.core.loops.vm_states import VmStates
from plasmavmc.observe import metrics as m
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.types.states import VmState
from tests.core_harness import add_node, make_core, vm_record

DEADLINE = 10.0


def _vm_series() -> dict[str, float]:
    return {s.labels["state"]: s.value for metric in m.VMS_TOTAL.collect() for s in metric.samples}


async def test_vm_gauges_are_left_out_until_the_index_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    core = await make_core(tmp_path)
    try:
        await core.store.commit([vm_record(VmState.STOPPED, "n1"), vm_record(VmState.STOPPED, "n2"),
                                 vm_record(VmState.RUNNING, "n1"), Write(keys.VMS + "org-h/p/broken", b"{not json")])
        monkeypatch.setattr(gauges, "INDEX_WAIT", 0.05)
        index = VmStates(core.store, 0.1)
        await gauges.refresh(core, index, True)  # the index is not running: not built
        assert _vm_series() == {}
        task = asyncio.create_task(index.run())
        try:
            assert await index.until_ready(DEADLINE)
            await gauges.refresh(core, index, True)
            assert _vm_series()["stopped"] == 2 and _vm_series()["running"] == 1
            assert sum(_vm_series().values()) == 3  # the broken record is in no state
            assert index.keys_on(["n1"]) is not None and len(index.keys_on(["n1"]) or []) == 2
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await gauges.refresh(core, None, True)  # no index: the narrow listing counts the same
        assert _vm_series()["stopped"] == 2 and sum(_vm_series().values()) == 3

    finally:
        await core.store.close()


async def test_node_series_follow_the_nodes_and_drop_a_removed_one(tmp_path: Path) -> None:
    core = await make_core(tmp_path)
    try:
        for name in ("gn-1", "gn-2"):
            await add_node(core, name, vcpus=4)
        await gauges.refresh(core, None, True)
        assert _node_series(m.NODE_CAPACITY_VCPUS) == {"gn-1": 4, "gn-2": 4}
        await add_node(core, "gn-1", vcpus=8)  # the agent reports more: the series follows
        await core.store.delete(keys.node("gn-2"))
        await gauges.refresh(core, None, True)
        assert _node_series(m.NODE_CAPACITY_VCPUS) == {"gn-1": 8}
        assert "gn-2" not in _node_series(m.HEARTBEAT_AGE)
        assert {s.labels["state"] for met in m.NODE_STATE.collect() for s in met.samples
                if s.labels["node"] == "gn-1" and s.value == 1} == {"ready"}
    finally:
        await core.store.close()


def _node_series(gauge: object) -> dict[str, float]:
    return {s.labels["node"]: s.value for met in gauge.collect() for s in met.samples  # type: ignore[attr-defined]
            if s.labels["node"].startswith("gn-")}

