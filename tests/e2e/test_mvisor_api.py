"""End to end with a real server and agent running mvisor (issue 16), where mvisor is installed.

mvisor cannot be installed from any registry here (`scripts/install-mvisor SRC_DIR` builds it from a source
tree the operator provides), so this is the one backend whose tests skip when the binary is missing.

The guest is the BIOS test guest (a boot sector that prints READY on COM1), uploaded as an ordinary raw disk
image: mvisor boots only by firmware. Where mvisor can boot it, the VM runs, its serial output reaches
GetConsole, an agent SIGKILL/restart re-adopts the process, and stop and delete leave nothing behind. Where
it cannot — this machine's KVM is kvm_pvm, which lacks KVM_SET_GSI_ROUTING — the test shows exactly how far
it gets: the process came up, took its configuration and set up its devices until the interrupt routing, the
start fails naming mvisor's error, the VM is ERROR with that reason, and delete leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import PlasmaError, VmNotFound
from plasmavmc.hypervisor.process import is_running
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSource, DiskSpec, HypervisorType, MemorySpec, VmSpec
from tests import bios_guest
from tests.conftest import Cluster, kill_leftover_qemu, start_cluster
from tests.e2e.helpers import ORG, PROJECT, console_until

pytestmark = pytest.mark.skipif(bios_guest.mvisor_missing() is not None, reason=str(bios_guest.mvisor_missing()))


@pytest.fixture(scope="module")
def mv_cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("mv-cluster")
    cluster = start_cluster(root, guest_dir, mvisor=shutil.which("mvisor"))
    try:
        yield cluster
    finally:
        cluster.agent.stop()
        cluster.server.stop()
        kill_leftover_qemu(root)


@pytest.fixture
async def mv_client(mv_cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(mv_cluster.api) as c:
        yield c


async def _bios_image(client: PlasmaClient, workdir: Path) -> str:
    disk = await bios_guest.build_disk(workdir / "bios.raw")

    async def chunks() -> AsyncIterator[bytes]:
        yield disk.read_bytes()

    return (await client.upload_image(ORG, "bios-guest", chunks())).id


def _mvisor_pids(runtime: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(runtime).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


async def test_vm_through_the_api(mv_client: PlasmaClient, mv_cluster: Cluster, tmp_path: Path) -> None:
    image = await _bios_image(mv_client, tmp_path)
    spec = VmSpec(memory=MemorySpec(size_mib=64), disks=(DiskSpec(id="root", source=DiskSource(image_id=image)),))
    vm = await mv_client.create_vm("mv-1", ORG, PROJECT, spec, hypervisor=HypervisorType.MVISOR)
    assert vm.hypervisor is HypervisorType.MVISOR
    vm = await mv_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.STOPPED}, 60)
    runtime = mv_cluster.root / "run" / "mv" / vm.id
    assert (runtime / "config.yaml").is_file() and (runtime / "handle.json").is_file()
    why = bios_guest.mvisor_cannot_boot(tmp_path / "probe")
    if why is None:
        await _runs_and_is_readopted(mv_client, mv_cluster, vm.id)
    else:
        await _fails_as_far_as_it_gets(mv_client, vm.id)
    assert not _mvisor_pids(runtime)
    await mv_client.delete_vm(ORG, PROJECT, vm.id)
    with pytest.raises(VmNotFound):
        await mv_client.wait_for_state(ORG, PROJECT, vm.id, {VmState.DELETED}, 30)
    assert not runtime.exists() and not _mvisor_pids(runtime)


async def _fails_as_far_as_it_gets(client: PlasmaClient, vm_id: str) -> None:
    with pytest.raises(PlasmaError) as err:
        await client.start_vm(ORG, PROJECT, vm_id)
    assert "mvisor" in err.value.message and "KVM_SET_GSI_ROUTING" in err.value.message, err.value
    vm = await client.wait_for_state(ORG, PROJECT, vm_id, {VmState.ERROR}, 30)
    assert vm.status.last_error and "KVM_SET_GSI_ROUTING" in vm.status.last_error
    # mvisor got as far as its device set-up (after loading the configuration and mapping RAM and
    # firmware): the panic is in `UpdateGsiRoutingTable`, before any vCPU ran, so the console is empty
    assert "UpdateGsiRoutingTable" in vm.status.last_error
    assert [chunk async for chunk in client.console(ORG, PROJECT, vm_id, follow=False)] in ([], [b""])


async def _runs_and_is_readopted(client: PlasmaClient, cluster: Cluster, vm_id: str) -> None:
    running = await client.start_vm(ORG, PROJECT, vm_id)
    assert running.state is VmState.RUNNING and running.status.host_pid
    pid = running.status.host_pid
    await console_until(client, vm_id, bios_guest.READY.decode(), timeout=60)
    cluster.agent.kill(signal.SIGKILL)
    cluster.agent.start()
    cluster.wait_ready(30)
    async with asyncio.timeout(30):
        while (vm := await client.get_vm(ORG, PROJECT, vm_id)).status.host_pid != pid or not is_running(pid):
            await asyncio.sleep(0.2)  # polling the API until the restarted agent has reported, with a deadline
    assert vm.state is VmState.RUNNING
    await client.stop_vm(ORG, PROJECT, vm_id)
    await client.wait_for_state(ORG, PROJECT, vm_id, {VmState.STOPPED}, 30)
    assert not is_running(pid)
