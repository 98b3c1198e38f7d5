"""An agent killed with SIGKILL and restarted loses no VM: the real server, agent and QEMU processes.

Three VMs run; the agent is SIGKILLed; while it is down one VM's QEMU is killed too. The restarted agent
re-adopts the two survivors (same QEMU processes: none was killed or restarted), the control plane
keeps them RUNNING, and status, console and power operations work on them again; the VM that died
while nobody watched is reported out of RUNNING with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.hypervisor.process import is_running
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from tests.conftest import Cluster, needs_qemu, restartable_cluster
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

pytestmark = needs_qemu
NAMES = ("keep-a", "keep-b", "dies")


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    with restartable_cluster(tmp_path_factory.mktemp("restart"), guest_dir) as c:
        yield c


@pytest.fixture(scope="module")
async def api(own_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(own_cluster.api) as c:
        yield c


async def boot(client: PlasmaClient, name: str) -> VirtualMachine:
    vm = await client.create_vm(name, ORG, PROJECT, tiny_spec())
    await client.start_vm(ORG, PROJECT, vm.id)
    await console_until(client, vm.id, f"PLASMAVMC-READY name={name} ", timeout=120)
    return await client.get_vm(ORG, PROJECT, vm.id)


async def agent_back(api: PlasmaClient, since: int, deadline_s: float = 60.0) -> None:
    """Wait for the restarted agent's first heartbeat: it sends it once every VM is re-adopted."""
    async with asyncio.timeout(deadline_s):
        while (await api.get_node("node-1")).last_heartbeat < since:
            await asyncio.sleep(0.2)  # polling the API, bounded by the deadline


async def test_sigkilled_agent_readopts_every_vm(own_cluster: Cluster, api: PlasmaClient) -> None:
    vms = dict(zip(NAMES, await asyncio.gather(*(boot(api, n) for n in NAMES)), strict=True))
    pids = {name: vm.status.host_pid for name, vm in vms.items()}
    assert all(pids.values()), pids

    own_cluster.agent.kill(signal.SIGKILL)
    os.kill(pids["dies"] or 0, signal.SIGKILL)  # dies while no agent watches
    assert is_running(pids["keep-a"] or 0) and is_running(pids["keep-b"] or 0)  # they outlive the agent

    restarted_at = int(time.time()) + 1
    own_cluster.agent.start()
    await agent_back(api, restarted_at)
    dead = await api.wait_for_state(ORG, PROJECT, vms["dies"].id, {VmState.ERROR, VmState.STOPPED}, 60)
    assert dead.state is VmState.STOPPED, dead.status  # restart policy never: it stays down, saying why
    assert dead.status.last_error and "while the agent was down" in dead.status.last_error, dead.status

    for name in ("keep-a", "keep-b"):
        vm = await api.get_vm(ORG, PROJECT, vms[name].id)
        assert vm.state is VmState.RUNNING and vm.status.host_pid == pids[name], (name, vm.status)
        assert is_running(pids[name] or 0), f"{name}'s QEMU was killed"
        # the console works again through the new agent: the history replays the boot
        await console_until(api, vm.id, f"PLASMAVMC-READY name={name} ", timeout=30)

    # power operations work on adopted VMs: a reboot boots again, a stop ends the process
    await api.reboot_vm(ORG, PROJECT, vms["keep-a"].id)
    await console_until(api, vms["keep-a"].id, "PLASMAVMC-READY name=keep-a ", count=2, timeout=120)
    rebooted = await api.get_vm(ORG, PROJECT, vms["keep-a"].id)
    assert rebooted.state is VmState.RUNNING and rebooted.status.host_pid != pids["keep-a"]
    await api.stop_vm(ORG, PROJECT, vms["keep-b"].id)
    stopped = await api.wait_for_state(ORG, PROJECT, vms["keep-b"].id, {VmState.STOPPED}, 60)
    assert stopped.state is VmState.STOPPED and not is_running(pids["keep-b"] or 0)

    for vm in vms.values():
        await api.delete_vm(ORG, PROJECT, vm.id, force=True)
