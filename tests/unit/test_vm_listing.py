"""`core.vms.listing`: ListVms pages and their server-side filters, over a real SQLite store, read from
the store and from the watched copy (`core/vms/reads.py`): the same pages either way.

VM records are written straight into the store (this is about reading them); the listing runs on the
real `Core` of `tests/core_harness.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.core.context import Core
from plasmavmc.core.vms.listing import MAX_SCANNED, VmFilter, list_vms
from plasmavmc.core.vms.reads import VmReads
from plasmavmc.errors import InvalidArgument
from plasmavmc.observe.metrics import VM_READS
from plasmavmc.store import keys
from plasmavmc.store.base import Write
from plasmavmc.types import codec
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from plasmavmc.v1 import types_pb2
from tests.core_harness import make_core

COUNT = 2500


@pytest.fixture(params=["store", "copy"])
async def core(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Core]:
    c = await make_core(tmp_path)
    task = None
    if request.param == "copy":
        c.vm_reads = VmReads(c.store)
        task = asyncio.create_task(c.vm_reads.run())
    try:
        yield c
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await c.store.close()


def _vm(i: int) -> VirtualMachine:
    return VirtualMachine(
        id=str(uuid.UUID(int=i + 1)), name=f"vm-{i:05d}", org_id="o", project_id="p",
        state=VmState.RUNNING if i % 10 == 0 else VmState.STOPPED,
        node_id=f"n{i % 4}", labels={"tier": "web" if i % 3 == 0 else "db"},
    )


async def _walk(core: Core, where: VmFilter, page_size: int = 100) -> tuple[list[str], list[int]]:
    """Every VM name the filter lists, following tokens, and the size of each page."""
    names: list[str] = []
    sizes: list[int] = []
    token = ""
    for _ in range(COUNT + 2):
        vms, token = await list_vms(core, "o", "p", page_size, token, where=where)
        names.extend(types_pb2.VirtualMachine.FromString(vm).name for vm in vms)
        sizes.append(len(vms))
        if not token:
            return names, sizes
    raise AssertionError("the listing never ended")


async def test_filters_list_exactly_the_matching_vms(core: Core) -> None:
    vms = [_vm(i) for i in range(COUNT)]
    for chunk in range(0, COUNT, 500):
        await core.store.commit([Write(keys.vm("o", "p", vm.id), codec.dumps(vm)) for vm in vms[chunk:chunk + 500]])
    cases = [
        VmFilter(),
        VmFilter(states=frozenset({VmState.RUNNING})),
        VmFilter(node_ids=frozenset({"n1", "n2"})),
        VmFilter(states=frozenset({VmState.RUNNING}), labels={"tier": "web"}),
        VmFilter(labels={"tier": "web"}, node_ids=frozenset({"n3"})),
    ]
    from_store = VM_READS.labels("store")._value.get()
    for where in cases:
        names, sizes = await _walk(core, where)
        assert names == [vm.name for vm in vms if where.matches(vm)], where
        assert max(sizes) <= 100
    nothing, sizes = await _walk(core, VmFilter(labels={"tier": "none"}))
    assert nothing == [] and len(sizes) == -(-COUNT // MAX_SCANNED)  # short pages, bounded reads each
    full, _ = await list_vms(core, "o", "p", 100, "")
    assert len(full) == 100 and types_pb2.VirtualMachine.FromString(full[0]).name == "vm-00000"
    if core.vm_reads is not None:  # every page came from the copy
        assert VM_READS.labels("store")._value.get() == from_store


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (VmFilter(node_ids=frozenset({"bad node"})), "node_ids"),
        (VmFilter(labels={"bad key!": "x"}), "labels[bad key!]"),
        (VmFilter(labels={"tier": "a\nb"}), "labels[tier]"),
        (VmFilter(node_ids=frozenset(f"n{i}" for i in range(101))), "node_ids"),
    ],
)
async def test_bad_filters_name_the_field(core: Core, where: VmFilter, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await list_vms(core, "o", "p", 10, "", where=where)
    assert refused.value.field == field
