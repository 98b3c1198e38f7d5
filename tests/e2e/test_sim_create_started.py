"""CreateVm with `start` on a simulated node: the agent's one-call create+start (`create_started`) goes
through the simulated fleet's own create, so the VM is RUNNING on return, held by the node the scheduler
chose, and known to that node's copies table (what its heartbeats and later operations read)."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.states import VmState
from tests.e2e.simulated import SIM, NodeSpec, sim_cluster, sim_spec

ORG, PROJECT = "org-cs", "proj-cs"


async def test_create_with_start_on_a_simulated_node(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-cs", NodeCapacity(8, 16 * 1024, 100), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as c:
        vm = await c.client.create_vm("cs-1", ORG, PROJECT, sim_spec(), SIM, start=True)
        assert vm.state is VmState.RUNNING and vm.node_id == "sim-cs"
        assert c.fleet.vms.vms_on("sim-cs") == [vm.id]
        assert (await c.client.stop_vm(ORG, PROJECT, vm.id)).id == vm.id  # the node drives it afterwards
        stopped = await c.client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 30)
        assert stopped.state is VmState.STOPPED
