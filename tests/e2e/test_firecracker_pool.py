"""The warm pool of FirecrackerBackend, driven directly: real jailer + firecracker, the PVH test guest.

A create with `start` takes a waiting process (its pid is the VM's, its jail id is in the handle), boots
the guest over the API with the VM's cgroup limits written into the pooled jail's cgroups (a CPU quota
with the VMM's allowance), at the agent's nice (pool launches run at the lowest until their API
answers), and the pool refills. A clone takes one too and continues from the snapshot's memory. The
pool is invisible: a second backend on the same runtime dir adopts the VMs only, kills the processes an
earlier (dead) agent left waiting, and `close` leaves no process, no jail and no cgroup behind. A
pooled VM stops and starts again (through the jailer, same jail id) and its delete removes its cgroups.
Through the real agent: a dead agent's pool is killed by the next one, which adopts the VM that took a
pooled process, and an agent stop leaves no pooled process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import HypervisorError, Unavailable
from plasmavmc.hypervisor import common
from plasmavmc.hypervisor.base import LocalImage, VmHandle
from plasmavmc.hypervisor.firecracker import jail, launch
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi, wait_for_socket
from plasmavmc.hypervisor.firecracker.backend import FirecrackerBackend
from plasmavmc.hypervisor.firecracker.pool import POOL_DIR
from plasmavmc.hypervisor.process import is_running, read_pidfile
from plasmavmc.hypervisor.vmdir import VM
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import CloneSource, ConsoleType, CpuSpec, HypervisorType, MemorySpec, VirtualMachine
from tests import firecracker_guest as fc
from tests.conftest import kill_leftover_qemu, start_cluster
from tests.contract.backends import read_until
from tests.e2e import test_firecracker_backend
from tests.e2e.helpers import ORG, PROJECT, console_until
from tests.e2e.test_firecracker_api import pvh_spec
from tests.unit.test_sched import slice_of

pytestmark = test_firecracker_backend.pytestmark
DEADLINE_S = test_firecracker_backend.DEADLINE_S
images = test_firecracker_backend.images  # the fixture
cgroup_dirs = test_firecracker_backend._cgroup_dirs


@pytest.fixture(autouse=True)
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """A VM outlives its backend by design, so one a test leaves (failing before its delete) is killed
    when the test ends, with its jail's cgroups."""
    yield
    fc.kill_leftovers(tmp_path)


async def filled(backend: FirecrackerBackend, count: int) -> list[int]:
    """The pids of the pool's waiting processes once there are `count` (poll-with-deadline)."""
    async with asyncio.timeout(DEADLINE_S):
        while len(backend.pool.ready()) != count:
            await asyncio.sleep(0.02)
    return [w.process.pid for w in backend.pool.ready()]


async def say(backend: FirecrackerBackend, vm: VirtualMachine, line: str, answer: bytes,
              ready: bytes | None = None) -> None:
    handle = next(h for h in await backend.handles() if h.vm_id == vm.id)
    console = await backend.console(handle, ConsoleType.SERIAL)
    seen = bytearray()
    try:
        if ready is not None:
            await read_until(console, ready, seen, DEADLINE_S)
        await console.write(line.encode() + b"\n")
        await read_until(console, answer, seen, DEADLINE_S)
    finally:
        await console.close()


def nice_values(pid: int) -> set[int]:
    """The nice value of every thread of `pid`."""
    return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def test_low_priority_moves_every_thread_and_back() -> None:
    """What a pool's launch and the VM that takes it do to a process's threads (`launch.set_low_priority`,
    then `launch.set_guest_priority`)."""
    code = "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len(os.listdir(f"/proc/{proc.pid}/task")) < 2:  # poll-with-deadline: its thread starts
            assert time.monotonic() < deadline, "the child's thread never started"
            time.sleep(0.01)
        tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        for tid in tids:  # a value of neither kind first, so each call below is seen to act
            os.setpriority(os.PRIO_PROCESS, tid, 7)
        launch.set_low_priority(proc.pid)
        assert nice_values(proc.pid) == {launch.LOW_PRIORITY_NICE}
        os.setpriority(os.PRIO_PROCESS, tids[-1], 7)
        launch.set_guest_priority(proc.pid)
        assert nice_values(proc.pid) == {os.getpriority(os.PRIO_PROCESS, 0)}  # the launcher's own
    finally:
        proc.kill()
        proc.wait()
    launch.set_low_priority(proc.pid)  # gone: nothing to set, no error
    launch.set_guest_priority(proc.pid)
    launch.set_vcpu_slice(proc.pid, 100_000)


def vm_of(name: str) -> VirtualMachine:
    vm = fc.vm(name)  # other limits than the defaults, so that writing them is seen
    return dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, cpu=CpuSpec(vcpus=1),
                                                            memory=MemorySpec(size_mib=96)))


async def test_create_started_takes_a_pooled_process(tmp_path: Path, images: dict[str, LocalImage]) -> None:
    backend = fc.backend(tmp_path / "run", warm_pool=1)
    await backend.open()
    try:
        (pooled,) = await filled(backend, 1)
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert nice_values(pooled) == {own}, "a waiting entry is set back once its API answers, not at the boot"
        jail_id = backend.pool.ready()[0].jail_id
        vm = vm_of("pooled")
        at_boot: list[list[Path]] = []
        boot_warm = backend._boot_warm
        steps: list[str] = []

        async def watched(*args: Any) -> None:  # the refill waits for the create: nothing launched beside it
            at_boot.append(list((tmp_path / "run" / POOL_DIR).iterdir()))
            steps.append("boot")
            await boot_warm(*args)

        backend._boot_warm = watched  # type: ignore[method-assign,assignment]
        handle, _ = await backend.create_started(vm, images, lambda handle: steps.append(f"ready {handle.vm_id}"))
        assert at_boot == [[]]
        assert steps == [f"ready {vm.id}", "boot"]  # its console can be followed before the guest writes
        assert handle.details["jail_id"] == jail_id
        status = await backend.status(handle)
        assert status.actual_state is VmState.RUNNING and status.host_pid == pooled
        await say(backend, vm, "hi", b"#0001 hi\n", ready=fc.READY)
        limits = dict(s.split("=", 1) for s in jail.cgroup_limits(backend.jailer, vm.spec))
        quota = limits.get("cpu.cfs_quota_us") or limits["cpu.max"].split()[0]
        assert quota == "150000"  # its one vCPU and half a CPU for Firecracker's own threads (vmm_cpu_percent)
        cgroups = cgroup_dirs(backend.jailer, jail_id)
        for key, value in limits.items():
            found = [d / key for d in cgroups if (d / key).exists()]
            assert found and found[0].read_text().strip() == value, key
            assert str(pooled) in (found[0].parent / "cgroup.procs").read_text()
        assert not (tmp_path / "run" / ".pool" / jail_id).exists()
        assert nice_values(pooled) == {own}, "the VM's threads (its vCPU's among them) left at low priority"
        (refilled,) = await filled(backend, 1)
        assert refilled != pooled and backend.pool.launched == 2
        adopter = fc.backend(tmp_path / "run")  # an agent restart: the pool's processes are no VMs
        assert [h.vm_id for h in await adopter.handles()] == [vm.id]
        assert (await adopter.status(handle)).host_pid == pooled
        await backend.stop(handle, timeout=DEADLINE_S)  # a later start is a jailer launch, same jail
        await backend.start(handle)
        again = await backend.status(handle)
        assert again.actual_state is VmState.RUNNING and again.host_pid not in (None, pooled)
        await say(backend, vm, "again", b"#0001 again\n", ready=fc.READY)
        assert "configured from one single json" in backend.paths(handle).log.read_text()  # --config-file
        await backend.delete(handle)
        assert not is_running(pooled) and not any(d.exists() for d in cgroups)
    finally:
        await backend.close()
    assert not is_running(refilled)
    assert list((tmp_path / "run" / ".pool").iterdir()) == []


async def test_an_entry_has_the_last_creates_files_made_ahead(tmp_path: Path,
                                                             images: dict[str, LocalImage]) -> None:
    """Once a create from images ran, the next entries get its kernel and disks made ahead (the jail's):
    a create that needs the same keeps them (the same disk file); one that needs others (another
    image's file, another disk size) has them replaced, never booting another image's copy."""
    backend = fc.backend(tmp_path / "run", warm_pool=1)
    await backend.open()
    handles: list[VmHandle] = []
    try:
        await filled(backend, 1)
        assert backend.pool.ready()[0].files is None  # no create yet: nothing to guess from
        first = vm_of("first")
        handles.append((await backend.create_started(first, images))[0])
        await filled(backend, 1)
        (entry,) = backend.pool.ready()
        assert entry.files is not None and entry.files == backend.pool.expect
        made = entry.paths.disk("root")
        image = images[fc.IMAGE_NAME].disk_path
        assert made.read_bytes()[:4096] == image.read_bytes()[:4096]
        assert (made.stat().st_uid, made.stat().st_size) == (fc.JAIL_UID, 1 << 30)
        assert (entry.paths.guest / "vmlinux").stat().st_ino == images[fc.IMAGE_NAME].kernel_path.stat().st_ino
        inode = made.stat().st_ino

        same = vm_of("same")
        handle, _ = await backend.create_started(same, images)
        handles.append(handle)
        assert backend.paths(handle).disk("root").stat().st_ino == inode  # kept, not made again
        await say(backend, same, "hi", b"#0001 hi\n", ready=fc.READY)

        await filled(backend, 1)
        other_file = tmp_path / "other.raw"
        other_file.write_bytes(b"another image" + bytes(4096))
        other = {fc.IMAGE_NAME: dataclasses.replace(images[fc.IMAGE_NAME], disk_path=other_file)}
        bigger = vm_of("other")
        bigger = dataclasses.replace(bigger, spec=dataclasses.replace(bigger.spec, disks=(
            dataclasses.replace(bigger.spec.disks[0], size_gib=2),)))
        handle, _ = await backend.create_started(bigger, other)
        handles.append(handle)
        disk = backend.paths(handle).disk("root")
        assert disk.read_bytes()[:13] == b"another image" and disk.stat().st_size == 2 << 30
        await say(backend, bigger, "ho", b"#0001 ho\n", ready=fc.READY)
        await filled(backend, 1)
        assert backend.pool.ready()[0].files == backend.pool.expect != entry.files  # the last create's now
    finally:
        for handle in handles:
            await backend.delete(handle)
        await backend.close()


async def test_unjailed_pool(tmp_path: Path, images: dict[str, LocalImage]) -> None:
    """Without the jailer the pool holds plain Firecrackers (`--id` the entry's id): the same take. The
    entry replaces a dir of the VM left without a handle (a create cut short before writing it)."""
    backend = fc.backend(tmp_path / "run", jailed=False, warm_pool=1)
    await backend.open()
    try:
        (pooled,) = await filled(backend, 1)
        vm = fc.vm("plain")
        leftover = tmp_path / "run" / vm.id
        leftover.mkdir()
        (leftover / "stray").write_bytes(b"")
        handle, _ = await backend.create_started(vm, images)
        assert not (leftover / "stray").exists() and (leftover / "handle.json").exists()
        assert (await backend.status(handle)).host_pid == pooled
        assert backend.paths(handle).guest == tmp_path.absolute() / "run" / vm.id / "vm"
        await say(backend, vm, "hi", b"#0001 hi\n", ready=fc.READY)
        await backend.delete(handle)
        assert not is_running(pooled)
    finally:
        await backend.close()


async def test_the_records_are_flushed_once_the_first_output_went_on(
        tmp_path: Path, images: dict[str, LocalImage], monkeypatch: pytest.MonkeyPatch) -> None:
    """A RunVm's pooled create writes and flushes the VM's records only once the guest's first output has
    gone on (`output_sent`, set here by the console's reader once it read the ready line), not beside it;
    the create answers with them written."""
    monkeypatch.setattr(common, "FIRST_OUTPUT_WAIT", DEADLINE_S)  # no bound in the way: the order is seen
    backend = fc.backend(tmp_path / "run", warm_pool=1)
    await backend.open()
    try:
        await filled(backend, 1)
        vm = fc.vm("first-output")
        output_sent = asyncio.Event()
        records_at_line: list[bool] = []
        reading: list[asyncio.Task[None]] = []

        async def follow(handle: VmHandle) -> None:
            console = await backend.console(handle, ConsoleType.SERIAL)
            try:
                await read_until(console, fc.READY, bytearray(), DEADLINE_S)
            finally:
                await console.close()
            records_at_line.append((backend.paths(handle).root / VM).exists())
            output_sent.set()

        def ready(handle: VmHandle) -> None:
            reading.append(asyncio.create_task(follow(handle)))

        handle, _ = await backend.create_started(vm, images, ready, output_sent=output_sent)
        await reading[0]
        assert records_at_line == [False]  # the guest's line came before the records were written
        assert (backend.paths(handle).root / VM).exists()
        await backend.delete(handle)
    finally:
        await backend.close()


async def test_a_new_agent_kills_what_the_last_one_left_waiting(tmp_path: Path) -> None:
    first = fc.backend(tmp_path / "run", warm_pool=2)
    await first.open()
    second = fc.backend(tmp_path / "run", warm_pool=1)
    try:
        left = await filled(first, 2)
        jail_ids = [w.jail_id for w in first.pool.ready()]
        await second.open()  # as an agent restarted after a crash: the earlier pool is still there
        assert not any(is_running(pid) for pid in left)
        assert await second.handles() == []
        assert not any(cgroup_dirs(first.jailer, j) for j in jail_ids)
        (fresh,) = await filled(second, 1)
        assert fresh not in left and is_running(fresh)
    finally:
        await second.close()
        await first.close()
    assert not is_running(fresh)


async def test_a_clone_takes_a_pooled_process(tmp_path: Path, images: dict[str, LocalImage]) -> None:
    backend = fc.backend(tmp_path / "run", warm_pool=1)
    await backend.open()
    handles = []
    try:
        source = fc.vm("source")
        handles.append((await backend.create_started(source, images))[0])
        await say(backend, source, "one", b"#0001 one\n", ready=fc.READY)
        await backend.snapshot(handles[0], "s1")
        (pooled,) = await filled(backend, 1)
        assert backend.pool.ready()[0].files is not None  # the source's files, made ahead: a clone's own replace them
        clone = dataclasses.replace(fc.vm("clone"), source_snapshot=CloneSource(vm_id=source.id, snapshot_id="s1"))
        handle, _ = await backend.create_started(clone, images)
        handles.append(handle)
        assert (await backend.status(handle)).host_pid == pooled
        await say(backend, clone, "two", b"#0002 two\n")  # the count from the snapshot's memory
        await say(backend, source, "three", b"#0002 three\n")
    finally:
        for handle in handles:
            await backend.delete(handle)
        await backend.close()


def test_pool_paths_keep_the_jail_id(tmp_path: Path) -> None:
    backend = fc.backend(tmp_path / "run", warm_pool=1)
    paths = backend.pool.paths_of("0b1c5a4e-6d1f-4d8e-9a55-3b6a1f0c2d11")
    assert paths.root == (tmp_path / "run" / ".pool" / paths.jail_id).absolute()
    assert re.search(r"/jail/[^/]+/0b1c5a4e-6d1f-4d8e-9a55-3b6a1f0c2d11/root$", str(paths.guest))


async def gone(pids: set[int | None]) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while any(pid is not None and is_running(pid) for pid in pids):
            await asyncio.sleep(0.05)  # poll-with-deadline: the agent kills them as it starts or stops


async def test_an_agent_kills_its_pool_at_stop_and_a_dead_ones_at_start(tmp_path: Path, guest_dir: Path) -> None:
    """Through the real agent: a VM took a pooled process; the agent is SIGKILLed (its pool stays
    behind), restarted: the old pool is killed, the VM is adopted and still runs in its process, and a
    new pool fills; the agent stopped (SIGTERM): no pooled process is left."""
    cluster = start_cluster(tmp_path, guest_dir, firecracker=True)
    runtime = tmp_path / "run" / "fc"
    try:
        old = await fc.pool_ready(runtime)
        async with await PlasmaClient.connect(cluster.api) as client:
            vm = await client.create_vm("pooled", ORG, PROJECT, pvh_spec(), hypervisor=HypervisorType.FIRECRACKER,
                                        start=True)
            assert vm.status.host_pid in old
            old = {p for p in {read_pidfile(f) for f in (runtime / POOL_DIR).glob("*/jail/*/*/root/*.pid")}
                   | old if p != vm.status.host_pid}
            cluster.agent.kill()
            assert any(pid is not None and is_running(pid) for pid in old)
            cluster.agent.start()
            await gone(old)
            # running ones only: a killed entry's pidfile can outlive its process for a moment (`_drop`)
            fresh: set[int | None] = {p for p in await fc.pool_ready(runtime) if p is not None and is_running(p)}
            assert fresh and not fresh & old and vm.status.host_pid not in fresh
            assert vm.status.host_pid is not None and is_running(vm.status.host_pid)
            await say_api(client, vm.id)
            cluster.agent.stop()
            await gone(fresh)
            assert list((runtime / POOL_DIR).iterdir()) == []
            assert is_running(vm.status.host_pid)  # VMs outlive the agent; only the pool ends with it
    finally:
        try:
            cluster.agent.stop()
            cluster.server.stop()
        finally:  # the VM outlives the agent: killed here, before its run dir is removed
            fc.kill_leftovers(tmp_path)
            kill_leftover_qemu(tmp_path)


async def say_api(client: PlasmaClient, vm_id: str) -> None:
    """The adopted VM answers through the API (its console, after the restarted agent re-registered).
    The restarted agent's pool can be ready before its gRPC server listens: UNAVAILABLE (connection
    refused) is asked again until the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            await console_until(client, vm_id, fc.READY_LINE_RE, timeout=DEADLINE_S)
            break
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)  # poll-with-deadline: the agent's server is starting
    found = await client.get_vm(ORG, PROJECT, vm_id)
    assert found.state is VmState.RUNNING


async def test_pipelined_puts_answer_in_order_and_name_the_failed_one(tmp_path: Path) -> None:
    """`put_all` (a pooled boot's PUTs on one connection): a refused one raises, naming its path, and
    the ones before it took effect (Firecracker answered them in order)."""
    assert fc.FIRECRACKER is not None
    sock = tmp_path / "api.sock"
    proc = await asyncio.create_subprocess_exec(fc.FIRECRACKER, "--api-sock", str(sock), cwd=tmp_path,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        api = FirecrackerApi(sock)
        await wait_for_socket(api, lambda: proc.returncode is None, DEADLINE_S)
        with pytest.raises(HypervisorError, match="/boot-source"):
            await api.put_all([("/machine-config", {"vcpu_count": 1, "mem_size_mib": 96}),
                               ("/boot-source", {"kernel_image_path": "no-such-kernel"}),
                               ("/actions", {"action_type": "InstanceStart"})])
        assert (await api.get("/machine-config"))["mem_size_mib"] == 96
        assert (await api.get("/"))["state"] == "Not started"
    finally:
        proc.kill()
        await proc.wait()


def thread_slices(pid: int) -> dict[str, int | None]:
    """Each thread's name → its scheduler slice in ns (`tests/unit/test_sched.slice_of`)."""
    return {(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()): slice_of(pid, int(tid))
            for tid in os.listdir(f"/proc/{pid}/task")}


async def test_vcpu_threads_run_with_the_configured_slice(tmp_path: Path, images: dict[str, LocalImage]) -> None:
    """`guest_slice_us`: a pooled Firecracker's VMM thread (the main one) runs with that scheduler slice
    from when its API answers, so the vCPU thread it makes at the boot has it from its start; one
    launched by the jailer at a later start (from its config file, its vCPU made before the API
    answers) has both set then. Its API thread keeps the kernel's default (what the VMM thread makes
    at the boot besides the vCPUs, KVM's own worker of the VM, inherits the slice too)."""
    if slice_of(os.getpid(), os.getpid()) is None:
        pytest.skip("this kernel has no custom scheduler slices (Linux 6.12 and later): se.slice not shown")
    default = slice_of(os.getpid(), os.getpid())
    assert default != 250_000
    backend = fc.backend(tmp_path / "run", warm_pool=1, guest_slice_us=250)
    await backend.open()

    def sliced(pid: int) -> tuple[int | None, dict[str, int | None]]:
        """The main thread's slice, and the others' by name."""
        slices = thread_slices(pid)
        main = slice_of(pid, pid)
        others = {name: value for name, value in slices.items()
                  if name != Path(f"/proc/{pid}/task/{pid}/comm").read_text().strip()}
        return main, others

    try:
        (pooled,) = await filled(backend, 1)
        main, others = sliced(pooled)
        assert main == 250_000 and set(others.values()) == {default}, ("a waiting entry", main, others)
        assert not any(name.startswith("fc_vcpu") for name in others), "a waiting entry has no vCPU"
        vm = fc.vm("sliced")
        handle, _ = await backend.create_started(vm, images, lambda handle: None)
        await say(backend, vm, "hi", b"#0001 hi\n", ready=fc.READY)
        main, others = sliced(pooled)
        assert main == 250_000 and others["fc_vcpu 0"] == 250_000 and others["fc_api"] == default, others
        await backend.stop(handle, timeout=DEADLINE_S)
        await backend.start(handle)  # a jailer launch (--config-file): the vCPU exists before the API answers
        pid = (await backend.status(handle)).host_pid
        assert pid is not None and pid != pooled
        main, others = sliced(pid)
        assert main == 250_000 and others["fc_vcpu 0"] == 250_000 and others["fc_api"] == default, others
        await backend.delete(handle)
    finally:
        await backend.close()
