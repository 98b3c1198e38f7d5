"""Reads through the real server (SQLite) with SIMULATED agents: ListVms' server-side filters and GetVm
from the watched copies, with read-your-writes.

- filters by state, node and labels list exactly the matching VMs, following tokens; bad filter values
  get INVALID_ARGUMENT naming the field, and change nothing;
- GetVm by id and by name sees every write the caller made through this server at once (create,
  label update, start, delete), 30 times in a row, and so do ListVms pages (in id order, following
  tokens); the answers (GetVm and pages) come from the watched copy
  (`plasmavmc_vm_reads_total{source="cache"}` moves, `source="store"` does not).
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import grpc
import pytest

from plasmavmc.errors import InvalidArgument, VmNotFound
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.states import VmState
from plasmavmc.v1 import types_pb2, vm_pb2
from tests.e2e.simulated import SIM, NodeSpec, SimCluster, sim_cluster, sim_spec

ORG, PROJECT = "org-r", "proj-r"
CAPACITY = NodeCapacity(64, 1024 * 1024, 100_000)
SPECS: list[NodeSpec] = [("sim-r0", CAPACITY, {}), ("sim-r1", CAPACITY, {})]


def _reads(cluster: SimCluster) -> dict[str, float]:
    with urllib.request.urlopen(f"{cluster.http}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.findall(r'^plasmavmc_vm_reads_total\{source="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {source: float(value) for source, value in found}


async def _listed(cluster: SimCluster, page_size: int) -> list[str]:
    """The ids of the project's VMs, page by page (each page in id order, the token where it ended)."""
    ids: list[str] = []
    token = ""
    while True:
        page, token = await cluster.client.list_vms(ORG, PROJECT, page_size=page_size, page_token=token)
        assert len(page) <= page_size
        ids += [vm.id for vm in page]
        if not token:
            return ids


async def _until_running(cluster: SimCluster, names: list[str]) -> None:
    async with asyncio.timeout(60):
        while True:
            vms = await cluster.client.list_all_vms(ORG, PROJECT)
            if all(vm.state == VmState.RUNNING for vm in vms if vm.name in names):
                return
            await asyncio.sleep(0.2)  # polling the server's view of the agents' reports, with a deadline


async def test_list_filters_are_server_side_and_exact(tmp_path: Path, guest_dir: Path) -> None:
    async with sim_cluster(tmp_path, guest_dir, SPECS) as cluster:
        client = cluster.client
        made = [
            await client.create_vm(f"f-{i:02d}", ORG, PROJECT, sim_spec(), SIM, labels={"tier": ("web", "db")[i % 2]})
            for i in range(12)
        ]
        started = [vm.name for vm in made[:5]]
        for name in started:
            await client.start_vm(ORG, PROJECT, name)
        await _until_running(cluster, started)
        everything = {vm.name: vm for vm in await client.list_all_vms(ORG, PROJECT)}
        assert len(everything) == 12

        running = await client.list_all_vms(ORG, PROJECT, states=[VmState.RUNNING])
        assert sorted(vm.name for vm in running) == sorted(started)
        on_r1 = await client.list_all_vms(ORG, PROJECT, node_ids=["sim-r1"])
        assert sorted(vm.name for vm in on_r1) == sorted(n for n, vm in everything.items() if vm.node_id == "sim-r1")
        web_stopped = await client.list_all_vms(ORG, PROJECT, states=[VmState.STOPPED], labels={"tier": "web"})
        assert sorted(vm.name for vm in web_stopped) == sorted(
            n for n, vm in everything.items() if vm.state == VmState.STOPPED and vm.labels["tier"] == "web"
        )
        page, token = await client.list_vms(ORG, PROJECT, page_size=2, labels={"tier": "db"})
        assert [vm.labels["tier"] for vm in page] == ["db", "db"] and token

        for kwargs, field in (({"node_ids": ["no such/node"]}, "node_ids"), ({"labels": {"bad key!": "x"}}, "labels")):
            with pytest.raises(InvalidArgument) as refused:
                await client.list_vms(ORG, PROJECT, **kwargs)
            assert (refused.value.field or "").startswith(field)
        assert len(await client.list_all_vms(ORG, PROJECT)) == 12  # nothing changed


async def test_unspecified_state_filter_is_invalid_argument(tmp_path: Path, guest_dir: Path) -> None:
    async with sim_cluster(tmp_path, guest_dir, SPECS) as cluster:
        request = vm_pb2.ListVmsRequest(org_id=ORG, project_id=PROJECT, states=[types_pb2.VM_STATE_UNSPECIFIED])
        with pytest.raises(InvalidArgument) as refused:
            await cluster.client._unary(cluster.client._vm_stub.ListVms, request)
        assert "states" in (refused.value.field or "")
        async with grpc.aio.insecure_channel(cluster.api) as channel:
            call = channel.unary_unary("/plasmavmc.v1.VmService/ListVms")
            bad = vm_pb2.ListVmsRequest(org_id=ORG, project_id=PROJECT).SerializeToString() + bytes([0xE0, 0x12, 0x63])
            with pytest.raises(grpc.aio.AioRpcError) as raw:  # states = 99: not a VmState
                await call(bad)
            assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_vm_reads_its_own_writes_from_the_watched_copy(tmp_path: Path, guest_dir: Path) -> None:
    async with sim_cluster(tmp_path, guest_dir, SPECS) as cluster:
        client = cluster.client
        warm_up = await client.create_vm("warm-up", ORG, PROJECT, sim_spec(), SIM)
        await client.get_vm(ORG, PROJECT, "warm-up")
        made_ids = [warm_up.id]
        before = _reads(cluster)
        for i in range(30):
            made = await client.create_vm(f"ryw-{i:02d}", ORG, PROJECT, sim_spec(), SIM, labels={"n": "0"})
            assert (await client.get_vm(ORG, PROJECT, made.id)).id == made.id
            assert (await client.get_vm(ORG, PROJECT, made.name)).id == made.id
            await client.update_vm(ORG, PROJECT, made.name, labels={"n": str(i + 1)})
            assert (await client.get_vm(ORG, PROJECT, made.id)).labels == {"n": str(i + 1)}
            started = await client.start_vm(ORG, PROJECT, made.id)
            seen = await client.get_vm(ORG, PROJECT, made.name)
            assert seen.state in (started.state, VmState.RUNNING), (started.state, seen.state)
            made_ids.append(made.id)
            assert await _listed(cluster, 7) == sorted(made_ids)  # ListVms pages show the new VM at once
        await client.delete_vm(ORG, PROJECT, "warm-up")
        with pytest.raises(VmNotFound):
            await client.get_vm(ORG, PROJECT, "warm-up")
        made_ids.remove(warm_up.id)
        assert await _listed(cluster, 4) == sorted(made_ids)  # and no longer the deleted one
        after = _reads(cluster)
        assert after.get("cache", 0) - before.get("cache", 0) >= 4 * 30 + 30 * 2, (before, after)  # GetVm + pages
        assert after.get("store", 0) == before.get("store", 0), (before, after)
