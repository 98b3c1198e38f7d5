"""Race-free claims and quotas under concurrency, through the real server API with SIMULATED agents.

1,000 parallel creates against room for exactly 500 VMs: exactly 500 are placed, no node is over its
allocatable, the rest get NO_SUITABLE_NODE saying why. 50 parallel creates against a project quota of
10 VMs: exactly 10 exist, the rest get QUOTA_EXCEEDED naming max_vms, and usage says 10.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import AlreadyExists, NoSuitableNode, PlasmaError, QuotaExceeded
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.vm import PlacementSpec, VirtualMachine
from tests.e2e.simulated import SIM, NodeSpec, sim_cluster, sim_spec

NODES = 10
VCPUS_PER_NODE = 50  # 10 x 50 = room for 500 one-vCPU VMs (memory and disk are plentiful)


async def create_all(client: PlasmaClient, org: str, project: str, count: int) -> list[VirtualMachine | PlasmaError]:
    async def one(i: int) -> VirtualMachine | PlasmaError:
        try:
            return await client.create_vm(f"vm-{i:04d}", org, project, sim_spec(), SIM)
        except (NoSuitableNode, QuotaExceeded) as err:
            return err

    return await asyncio.gather(*(one(i) for i in range(count)))


async def test_1000_parallel_creates_against_room_for_500(tmp_path: Path, guest_dir: Path) -> None:
    capacity = NodeCapacity(VCPUS_PER_NODE, 1024 * 1024, 100_000)
    specs: list[NodeSpec] = [(f"sim-{i:02d}", capacity, {}) for i in range(NODES)]
    async with sim_cluster(tmp_path, guest_dir, specs) as cluster:
        results = await create_all(cluster.client, "org-a", "proj-a", 1000)
        placed = [r for r in results if isinstance(r, VirtualMachine)]
        refused = [r for r in results if isinstance(r, PlasmaError)]
        assert len(placed) == 500, cluster.logs()
        assert len(refused) == 500 and all(isinstance(e, NoSuitableNode) for e in refused)
        assert "ResourceFilter rejected 10" in refused[-1].message
        nodes = {n.id: n for n in await cluster.client.list_nodes()}
        per_node = Counter(vm.node_id for vm in placed)
        for node_id, node in nodes.items():
            assert node.allocated.vcpus <= node.allocatable.vcpus
            assert node.allocated.vcpus == per_node[node_id] == VCPUS_PER_NODE
        listed, _ = await cluster.client.list_vms("org-a", "proj-a", page_size=1000)
        assert len(listed) == 500
        usage = (await cluster.client.get_quota("org-a", "proj-a")).usage
        assert (usage.vms, usage.vcpus) == (500, 500)


async def test_50_parallel_creates_against_a_quota_of_10(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [(f"sim-{i}", NodeCapacity(64, 1024 * 1024, 100_000), {}) for i in range(4)]
    async with sim_cluster(tmp_path, guest_dir, specs) as cluster:
        await cluster.client.set_quota("org-q", "proj-q", ResourceLimits(max_vms=10))
        results = await create_all(cluster.client, "org-q", "proj-q", 50)
        created = [r for r in results if isinstance(r, VirtualMachine)]
        refused = [r for r in results if isinstance(r, PlasmaError)]
        assert len(created) == 10, cluster.logs()
        assert len(refused) == 40 and all(isinstance(e, QuotaExceeded) for e in refused)
        assert all("max_vms" in e.message for e in refused)
        quota = await cluster.client.get_quota("org-q", "proj-q")
        assert quota.limits.max_vms == 10 and quota.usage.vms == 10
        assert (await cluster.client.get_quota("org-q")).usage.vms == 10
        await cluster.client.delete_vm("org-q", "proj-q", created[0].id)
        assert (await cluster.client.get_quota("org-q", "proj-q")).usage.vms == 9
        again = await cluster.client.create_vm("vm-again", "org-q", "proj-q", sim_spec(), SIM)
        assert again.node_id is not None


async def test_parallel_creates_of_one_name_count_once(tmp_path: Path, guest_dir: Path) -> None:
    """Charges of one org share commits: the same name claimed 20 times at once still yields one VM."""
    specs: list[NodeSpec] = [("sim-0", NodeCapacity(64, 1024 * 1024, 100_000), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as cluster:

        async def one(project: str) -> VirtualMachine | PlasmaError:
            try:
                return await cluster.client.create_vm("same", "org-d", project, sim_spec(), SIM)
            except AlreadyExists as err:
                return err

        results = await asyncio.gather(*(one("proj-d") for _ in range(20)), one("proj-e"), one("proj-f"))
        made = [r for r in results if isinstance(r, VirtualMachine)]
        assert sorted(vm.project_id for vm in made) == ["proj-d", "proj-e", "proj-f"]
        assert all(isinstance(r, AlreadyExists) for r in results if not isinstance(r, VirtualMachine))
        assert (await cluster.client.get_quota("org-d", "proj-d")).usage.vms == 1
        assert (await cluster.client.get_quota("org-d")).usage.vms == 3


async def test_parallel_anti_affinity_group_never_shares_a_node(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [(f"sim-{i}", NodeCapacity(64, 1024 * 1024, 100_000), {}) for i in range(3)]
    async with sim_cluster(tmp_path, guest_dir, specs) as cluster:
        group = sim_spec(placement=PlacementSpec(anti_affinity_group="db"))

        async def one(i: int) -> VirtualMachine | PlasmaError:
            try:
                return await cluster.client.create_vm(f"db-{i}", "org-g", "proj-g", group, SIM)
            except NoSuitableNode as err:
                return err

        results = await asyncio.gather(*(one(i) for i in range(10)))
        placed = [r for r in results if isinstance(r, VirtualMachine)]
        assert sorted(vm.node_id or "" for vm in placed) == ["sim-0", "sim-1", "sim-2"]
        refused = [r for r in results if isinstance(r, PlasmaError)]
        assert len(refused) == 7 and all("AntiAffinityFilter rejected 3" in e.message for e in refused)
        await cluster.client.delete_vm("org-g", "proj-g", placed[0].id)
        again = await cluster.client.create_vm("db-again", "org-g", "proj-g", group, SIM)
        assert again.node_id == placed[0].node_id
