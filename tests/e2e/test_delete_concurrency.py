"""16 clients creating and deleting VMs at once through the real server (SIMULATED agents): DeleteVm and
CreateVm never answer CONFLICT for a race they can retry themselves, and everything ends consistent
(no VM left, usage back to zero, nodes' allocations released)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError
from plasmavmc.types.node import NodeCapacity
from tests.e2e.simulated import SIM, NodeSpec, sim_cluster, sim_spec

CLIENTS = 16
ROUNDS = 12  # create + delete per client


async def churn(client: PlasmaClient, worker: int, answers: Counter[str]) -> None:
    for i in range(ROUNDS):
        try:
            vm = await client.create_vm(f"c{worker:02d}-{i:03d}", "org-c", "proj-c", sim_spec(), SIM)
            answers["create ok"] += 1
            await client.delete_vm("org-c", "proj-c", vm.id)
            answers["delete ok"] += 1
        except PlasmaError as err:
            answers[err.code.value] += 1


async def test_16_clients_create_and_delete_without_conflict(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-0", NodeCapacity(64, 1024 * 1024, 100_000), {}),
                             ("sim-1", NodeCapacity(64, 1024 * 1024, 100_000), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as cluster:
        answers: Counter[str] = Counter()
        await asyncio.gather(*(churn(cluster.client, w, answers) for w in range(CLIENTS)))
        assert answers == Counter({"create ok": CLIENTS * ROUNDS, "delete ok": CLIENTS * ROUNDS}), (
            answers, cluster.logs())
        listed, _ = await cluster.client.list_vms("org-c", "proj-c", page_size=1000)
        assert listed == []
        assert (await cluster.client.get_quota("org-c", "proj-c")).usage.vms == 0
        for node in await cluster.client.list_nodes():
            assert node.allocated.vcpus == 0, node
