"""Quota charges across two servers: each remembers the records it committed, and must never act on
a stale memory. Two `SqliteStore`s on one file stand for two servers (each has its own memory); the
charges are real commits, checked by reading the records back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plasmavmc.core import quotas
from plasmavmc.errors import QuotaExceeded
from plasmavmc.store.base import Write
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types.quota import QuotaUsage, ResourceLimits

ONE = QuotaUsage(vms=1, vcpus=1, memory_mib=64, storage_gib=1)


async def _charge(store: SqliteStore, name: str, delta: QuotaUsage = ONE) -> int:
    return await quotas.commit_charged(store, "org", "proj", delta, [Write(f"vm/{name}", b"x", 0)])


async def test_charges_after_another_server_wrote_count_exactly(tmp_path: Path) -> None:
    a = await SqliteStore.open(tmp_path / "s.db")
    b = await SqliteStore.open(tmp_path / "s.db")
    try:
        await asyncio.gather(*(_charge(a, f"a{i}") for i in range(5)))  # a now remembers usage 5
        await asyncio.gather(*(_charge(b, f"b{i}") for i in range(3)))  # b moved it to 8 behind a's back
        await asyncio.gather(*(_charge(a, f"c{i}") for i in range(4)))  # a's memory is stale: re-read
        for store in (a, b):
            assert (await quotas.get(store, "org", "proj")).usage.vms == 12
            assert (await quotas.get(store, "org", "")).usage.vms == 12
    finally:
        await a.close()
        await b.close()


async def test_a_limit_raised_elsewhere_admits_and_one_lowered_refuses(tmp_path: Path) -> None:
    a = await SqliteStore.open(tmp_path / "s.db")
    b = await SqliteStore.open(tmp_path / "s.db")
    try:
        await quotas.set_limits(a, "org", "proj", ResourceLimits(max_vms=2))
        await asyncio.gather(_charge(a, "1"), _charge(a, "2"))
        with pytest.raises(QuotaExceeded):
            await _charge(a, "3")  # a remembers: full
        await quotas.set_limits(b, "org", "proj", ResourceLimits(max_vms=4))
        await _charge(a, "3")  # a's memory says full, the store says room: admitted
        await quotas.set_limits(b, "org", "proj", ResourceLimits(max_vms=3))
        with pytest.raises(QuotaExceeded, match="max_vms"):
            await _charge(a, "4")  # a's memory says room (limit 4), the store says full
        assert await a.get("vm/4") is None  # refused: nothing of it was written
        assert (await quotas.get(b, "org", "proj")).usage.vms == 3
    finally:
        await a.close()
        await b.close()


async def test_a_charge_after_a_release_reads_no_quota_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release (a delete's, one charge under the org lock) remembers the records it wrote, so the
    create that follows commits without reading them (it used to forget them: two reads on every create
    after a delete); the counts stay exact."""
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        await asyncio.gather(*(_charge(store, f"a{i}") for i in range(3)))
        await quotas.commit_charged(store, "org", "proj", -ONE, [Write("vm/a0", None)])
        reads: list[str] = []
        real = quotas.read_quota

        async def counted(s: SqliteStore, org_id: str, project_id: str):  # type: ignore[no-untyped-def]
            reads.append(f"{org_id}/{project_id}")
            return await real(s, org_id, project_id)

        monkeypatch.setattr(quotas, "read_quota", counted)
        await _charge(store, "b")
        assert reads == []
        monkeypatch.setattr(quotas, "read_quota", real)
        assert (await quotas.get(store, "org", "proj")).usage.vms == 3
        assert (await quotas.get(store, "org", "")).usage.vms == 3
    finally:
        await store.close()
