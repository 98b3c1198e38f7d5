"""Node failure and drain through the real server API, with SIMULATED agents (nothing boots here).

A node whose agent stops heartbeating turns NOT_READY within the timeout, its VMs get the
NodeUnresponsive condition and nothing new lands there; when it heartbeats again it is READY and the
condition is gone. A drain cold-moves every movable VM (a running one runs again on its new node) and
reports the one that cannot move instead of dropping it; without allow_disk_loss it moves nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest

from plasmavmc.errors import NoSuitableNode
from plasmavmc.types.node import Node, NodeCapacity, NodeState
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import PlacementSpec, VirtualMachine
from tests.e2e.simulated import SIM, NodeSpec, SimCluster, sim_cluster, sim_spec, until

T = TypeVar("T")
ORG, PROJECT = "org-n", "proj-n"
CAP = NodeCapacity(16, 64 * 1024, 1000)
ON_A = PlacementSpec(node_selector={"pool": "a"})


def has_flag(vm: VirtualMachine) -> bool:
    return any(c.type == "NodeUnresponsive" and c.status for c in vm.status.conditions)


async def test_silent_node_goes_not_ready_and_flags_its_vms(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-a", CAP, {"pool": "a"}), ("sim-b", CAP, {"pool": "b"})]
    async with sim_cluster(tmp_path, guest_dir, specs, heartbeat_timeout=2, heartbeat_interval=0.5) as c:
        vm = await c.client.create_vm("pinned", ORG, PROJECT, sim_spec(placement=ON_A), SIM)
        await c.client.start_vm(ORG, PROJECT, vm.id)
        other = await c.client.create_vm(
            "free", ORG, PROJECT, sim_spec(placement=PlacementSpec(node_selector={"pool": "b"})), SIM
        )
        c.fleet.pause("sim-a")
        await until(lambda: c.client.get_node("sim-a"), lambda n: n.state == NodeState.NOT_READY, 15, "NOT_READY")
        flagged = await until(lambda: c.client.get_vm(ORG, PROJECT, vm.id), has_flag, 10, "NodeUnresponsive")
        assert flagged.state == VmState.RUNNING  # unknown, not assumed dead
        assert not has_flag(await c.client.get_vm(ORG, PROJECT, other.id))
        assert (await c.client.get_node("sim-b")).state == NodeState.READY
        with pytest.raises(NoSuitableNode, match="ReadyFilter rejected 1 \\(sim-a: node is not_ready\\)"):
            await c.client.create_vm("nowhere", ORG, PROJECT, sim_spec(placement=ON_A), SIM)

        c.fleet.resume("sim-a")
        await until(lambda: c.client.get_node("sim-a"), lambda n: n.state == NodeState.READY, 15, "READY again")
        back = await until(lambda: c.client.get_vm(ORG, PROJECT, vm.id), lambda v: not has_flag(v), 10, "flag gone")
        assert back.state == VmState.RUNNING and back.node_id == "sim-a"
        placed = await c.client.create_vm("lands", ORG, PROJECT, sim_spec(placement=ON_A), SIM)
        assert placed.node_id == "sim-a"


def drain_condition(node: Node) -> tuple[bool, str, str] | None:
    for cond in node.conditions:
        if cond.type == "Drain":
            return cond.status, cond.reason, cond.message
    return None


async def drained(c: SimCluster, node_id: str) -> tuple[bool, str, str]:
    def finished(n: Node) -> bool:
        cond = drain_condition(n)
        return cond is not None and cond[1] in ("Complete", "Incomplete")

    node = await until(lambda: c.client.get_node(node_id), finished, 30, "drain finished")
    cond = drain_condition(node)
    assert cond is not None
    return cond


async def test_drain_moves_every_movable_vm_and_reports_the_rest(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [
        ("sim-a", CAP, {"pool": "a"}),
        ("sim-b", CAP, {"pool": "b"}),
        ("sim-c", CAP, {"pool": "b"}),
    ]
    async with sim_cluster(tmp_path, guest_dir, specs) as c:
        for other in ("sim-b", "sim-c"):
            await c.client.cordon_node(other)
        vms = [await c.client.create_vm(f"vm-{i}", ORG, PROJECT, sim_spec(vcpus=2), SIM) for i in range(4)]
        stuck = await c.client.create_vm("pinned", ORG, PROJECT, sim_spec(placement=ON_A), SIM)
        assert {v.node_id for v in [*vms, stuck]} == {"sim-a"}
        for v in vms[:2]:
            await c.client.start_vm(ORG, PROJECT, v.id)
        for other in ("sim-b", "sim-c"):
            await c.client.uncordon_node(other)

        node = await c.client.drain_node("sim-a")  # without allow_disk_loss: nothing may move
        assert node.state == NodeState.DRAINING
        done, reason, message = await drained(c, "sim-a")
        assert (done, reason) == (False, "Incomplete")
        assert "moved 0" in message and message.count("allow_disk_loss") == 5
        assert {(await c.client.get_vm(ORG, PROJECT, v.id)).node_id for v in vms} == {"sim-a"}

        await c.client.drain_node("sim-a", allow_disk_loss=True)
        done, reason, message = await drained(c, "sim-a")
        assert (done, reason) == (False, "Incomplete") and "moved 4" in message
        assert stuck.id in message and "AffinityFilter" in message
        after = [await c.client.get_vm(ORG, PROJECT, v.id) for v in vms]
        assert all(v.node_id in ("sim-b", "sim-c") for v in after)
        assert [v.state for v in after] == [VmState.RUNNING] * 2 + [VmState.STOPPED] * 2
        assert (await c.client.get_vm(ORG, PROJECT, stuck.id)).node_id == "sim-a"
        nodes = {n.id: n for n in await c.client.list_nodes()}
        assert nodes["sim-a"].allocated.vcpus == 1  # only the pinned VM's claim is left
        assert nodes["sim-b"].allocated.vcpus + nodes["sim-c"].allocated.vcpus == 8
        assert nodes["sim-a"].state == NodeState.DRAINING
        assert set(c.fleet.vms.vms_on("sim-a")) == {stuck.id}  # the old copies were deleted
