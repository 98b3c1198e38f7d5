"""An agent killed at each step of CreateVm and StartVm leaves nothing behind once the VM is deleted.

Real server, agent and QEMU processes. For each step the agent is restarted with `PLASMAVMC_CRASH_AT`
naming it (hypervisor/crashpoints.py: the agent SIGKILLs itself on reaching that point, which is
`kill -9` at exactly that moment), the operation is sent, the agent dies; it is restarted normally and
the VM deleted. Then the VM's runtime directory, its hypervisor process and its image-cache pin file
are gone. The steps: before the runtime directory exists, with the directory but no handle, with the
handle only, with the disks made, with QEMU spawned but the start unfinished, and after a finished start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError, VmNotFound
from plasmavmc.hypervisor.crashpoints import ENV
from plasmavmc.types.states import VmState
from tests.conftest import Cluster, needs_qemu, start_cluster
from tests.e2e.helpers import ORG, tiny_spec
from tests.e2e.test_agent_restart import agent_back

pytestmark = needs_qemu
PROJ = "proj-crash-steps"
DEADLINE_S = 60.0
CREATE_STEPS = ("create:begin", "create:dir", "create:handle", "create:disks")
START_STEPS = ("start:spawned", "after start")


@pytest.fixture(scope="module")
def crash_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("crash-steps"), guest_dir)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def api(crash_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(crash_cluster.api) as c:
        yield c


async def _restart_agent(cluster: Cluster, api: PlasmaClient, crash_at: str | None) -> None:
    cluster.agent.stop()
    cluster.agent.env = {ENV: crash_at} if crash_at else None
    since = int(time.time()) + 1  # a heartbeat of the stopped agent in this same second does not count
    cluster.agent.start()
    await agent_back(api, since, DEADLINE_S)


async def _agent_died(cluster: Cluster) -> None:
    popen = cluster.agent.popen
    assert popen is not None
    async with asyncio.timeout(DEADLINE_S):
        while popen.poll() is None:
            await asyncio.sleep(0.1)  # polling a process we started, bounded by the deadline


def _processes_of(vm_id: str) -> list[int]:
    """Pids whose command line names this VM (its QEMU carries the runtime dir, named by the VM id)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if vm_id.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


async def _delete_and_check(cluster: Cluster, api: PlasmaClient, vm_id: str) -> None:
    run_dir = cluster.root / "run" / "kvm" / vm_id
    await api.delete_vm(ORG, PROJ, vm_id, force=True)
    async with asyncio.timeout(DEADLINE_S):
        while True:
            try:
                await api.get_vm(ORG, PROJ, vm_id)
            except VmNotFound:
                break
            await asyncio.sleep(0.2)  # polling the API, bounded by the deadline
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())
    assert _processes_of(vm_id) == []
    assert not (cluster.root / "cache" / ".pins" / vm_id).exists()
    assert list((cluster.root / "cache").rglob("*.partial")) == []


@pytest.mark.parametrize("step", CREATE_STEPS)
async def test_agent_killed_during_create(crash_cluster: Cluster, api: PlasmaClient, step: str) -> None:
    await _restart_agent(crash_cluster, api, step)
    with pytest.raises(PlasmaError):  # Unavailable or HypervisorError: the agent died mid-call
        await api.create_vm(f"crash-{step.replace(':', '-')}", ORG, PROJ, tiny_spec())
    await _agent_died(crash_cluster)
    [vm] = await api.list_all_vms(ORG, PROJ)
    if step != "create:begin":
        assert (crash_cluster.root / "run" / "kvm" / vm.id).is_dir()  # the step was really reached
    await _restart_agent(crash_cluster, api, None)
    await _delete_and_check(crash_cluster, api, vm.id)


@pytest.mark.parametrize("step", START_STEPS)
async def test_agent_killed_during_start(crash_cluster: Cluster, api: PlasmaClient, step: str) -> None:
    crash_at = step if step.startswith("start:") else None
    await _restart_agent(crash_cluster, api, crash_at)
    vm = await api.create_vm(f"crash-{step.replace(':', '-').replace(' ', '-')}", ORG, PROJ, tiny_spec())
    if crash_at is None:
        assert (await api.start_vm(ORG, PROJ, vm.id)).state is VmState.RUNNING
        crash_cluster.agent.kill()  # SIGKILL after a finished start
    else:
        with pytest.raises(PlasmaError):
            await api.start_vm(ORG, PROJ, vm.id)
        await _agent_died(crash_cluster)
    assert _processes_of(vm.id) != []  # QEMU runs on without its agent
    await _restart_agent(crash_cluster, api, None)
    await _delete_and_check(crash_cluster, api, vm.id)
