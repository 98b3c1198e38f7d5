"""Convergence after agent outages during operations (real server, agent, QEMU): the store follows
what runs on the node.

- The agent is killed (SIGKILL) between QEMU's start and the record of it: StartVm fails and the VM is
  recorded ERROR although its QEMU runs; the restarted agent re-adopts the QEMU, and the VM becomes
  RUNNING with no `last_error`; stop, start and delete all work on it.
- The agent is down during a stop: StopVm fails, the VM is recorded ERROR, the guest never stopped; once
  the agent is back the VM is RUNNING again (stale error cleared) and stop and delete work.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError, VmNotFound
from plasmavmc.hypervisor.process import is_running
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine
from tests.conftest import Cluster, kill_leftover_qemu, needs_qemu, start_cluster
from tests.e2e.helpers import ORG, PROJECT, console_until, tiny_spec

pytestmark = needs_qemu
DEADLINE = 120.0


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("converge"), guest_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
        kill_leftover_qemu(cluster.root)


@pytest.fixture(scope="module")
async def api(own_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(own_cluster.api) as c:
        yield c


def qemu_pid(root: Path, vm_id: str) -> int | None:
    """The pid of the VM's QEMU once its pidfile names a live process."""
    for pidfile in root.glob(f"run/kvm/{vm_id}*/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if is_running(pid):
                return pid
    return None


async def until_state(api: PlasmaClient, vm_id: str, state: VmState, cluster: Cluster) -> VirtualMachine:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        vm = await api.get_vm(ORG, PROJECT, vm_id)
        if vm.state is state:
            return vm
        await asyncio.sleep(0.1)  # polling the control plane, with a deadline
    raise AssertionError(f"{vm_id} not {state.value} in {DEADLINE}s: {vm.state} {vm.status}\n{cluster.logs()}")


async def restart_agent(cluster: Cluster) -> None:
    cluster.agent.start()
    await asyncio.to_thread(cluster.wait_ready, DEADLINE)


async def stop_start_delete(api: PlasmaClient, vm: VirtualMachine, pid: int, cluster: Cluster) -> None:
    """StopVm, StartVm and DeleteVm all work on the converged VM."""
    await api.stop_vm(ORG, PROJECT, vm.id, force=True)
    stopped = await until_state(api, vm.id, VmState.STOPPED, cluster)
    assert not is_running(pid) and stopped.status.last_error is None
    await api.start_vm(ORG, PROJECT, vm.id)
    await until_state(api, vm.id, VmState.RUNNING, cluster)
    await api.delete_vm(ORG, PROJECT, vm.id, force=True)
    with pytest.raises(VmNotFound):
        async with asyncio.timeout(DEADLINE):
            while True:
                await api.get_vm(ORG, PROJECT, vm.id)
                await asyncio.sleep(0.1)  # polling the control plane, with a deadline


async def test_agent_killed_between_qemu_start_and_the_record(own_cluster: Cluster, api: PlasmaClient) -> None:
    vm = await api.create_vm("conv-start", ORG, PROJECT, tiny_spec())
    start = asyncio.create_task(api.start_vm(ORG, PROJECT, vm.id))
    deadline = time.monotonic() + DEADLINE
    while (pid := qemu_pid(own_cluster.root, vm.id)) is None:
        assert time.monotonic() < deadline and not start.done(), own_cluster.logs()
        await asyncio.sleep(0.01)  # polling for the QEMU process, with a deadline
    own_cluster.agent.kill(signal.SIGKILL)  # QEMU runs; the agent never answers the start
    with pytest.raises(PlasmaError):
        await start
    believed = await api.get_vm(ORG, PROJECT, vm.id)
    assert believed.state is VmState.ERROR and believed.status.last_error, believed
    assert is_running(pid)

    await restart_agent(own_cluster)
    running = await until_state(api, vm.id, VmState.RUNNING, own_cluster)
    assert running.status.last_error is None and running.status.host_pid == pid, running.status
    await console_until(api, vm.id, "PLASMAVMC-READY name=conv-start ", timeout=DEADLINE)
    await stop_start_delete(api, running, pid, own_cluster)


async def test_agent_down_during_a_stop(own_cluster: Cluster, api: PlasmaClient) -> None:
    vm = await api.create_vm("conv-stop", ORG, PROJECT, tiny_spec())
    await api.start_vm(ORG, PROJECT, vm.id)
    running = await until_state(api, vm.id, VmState.RUNNING, own_cluster)
    pid = running.status.host_pid
    assert pid is not None

    own_cluster.agent.kill(signal.SIGKILL)
    with pytest.raises(PlasmaError):
        await api.stop_vm(ORG, PROJECT, vm.id)
    believed = await api.get_vm(ORG, PROJECT, vm.id)
    assert believed.state is VmState.ERROR and believed.status.last_error, believed
    assert is_running(pid)  # the stop never reached the guest

    await restart_agent(own_cluster)
    back = await until_state(api, vm.id, VmState.RUNNING, own_cluster)
    assert back.status.last_error is None and back.status.host_pid == pid, back.status
    await stop_start_delete(api, back, pid, own_cluster)
