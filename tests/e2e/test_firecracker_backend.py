"""FirecrackerBackend driven directly: real firecracker + jailer, the PVH test guest.

What the conformance suite cannot see without a guest shell is checked here through the guest's echo
protocol (`#<n> <line>`, n = lines seen since boot, kept in guest memory): console input, memory state
carried over a snapshot into a fresh process, guest power-off vs. requested exits, Ctrl-Alt-Del with its
kill deadline, adoption by a second backend instance, what the jail really is (uid, PID namespace,
cgroup limits, chroot) and that delete leaves nothing behind; plus `supports()` naming every refusal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError, InvalidArgument, PlasmaError
from plasmavmc.hypervisor.base import ConsoleStream, LocalImage, UnsupportedFeature, VmHandle
from plasmavmc.hypervisor.firecracker import jail
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi, wait_for_socket
from plasmavmc.hypervisor.firecracker.backend import FirecrackerBackend
from plasmavmc.hypervisor.process import is_running
from plasmavmc.hypervisor.qemu.accel import hardware_kvm
from plasmavmc.images.guest.build import build_guest
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    BootSpec,
    ConsoleType,
    CpuSpec,
    DiskBus,
    DiskCache,
    DiskSource,
    DiskSpec,
    MemorySpec,
    NetworkSpec,
    NicModel,
    SecuritySpec,
)
from tests import binaries
from tests import firecracker_guest as fc
from tests.contract.backends import read_until

pytestmark = [binaries.require(*fc.BINARIES),
              pytest.mark.skipif(fc.capability_missing() is not None, reason=str(fc.capability_missing()))]
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
async def images() -> dict[str, LocalImage]:
    return await fc.images()


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    return tmp_path / "run"


@dataclasses.dataclass
class Guest:
    backend: FirecrackerBackend
    handle: VmHandle
    console: ConsoleStream
    seen: bytearray

    async def expect(self, pattern: bytes | re.Pattern[bytes]) -> bytes:
        return await read_until(self.console, pattern, self.seen, DEADLINE_S)

    async def say(self, line: str, answer: bytes) -> None:
        await self.console.write(line.encode() + b"\n")
        await self.expect(answer)

    async def pid(self) -> int:
        pid = (await self.backend.status(self.handle)).host_pid
        assert pid is not None
        return pid


async def boot(backend: FirecrackerBackend, images: dict[str, LocalImage], name: str) -> Guest:
    handle = await backend.create(fc.vm(name), images)
    await backend.start(handle)
    guest = Guest(backend, handle, await backend.console(handle, ConsoleType.SERIAL), bytearray())
    await guest.expect(fc.READY)
    return guest


@pytest.fixture
async def jailed(runtime: Path, images: dict[str, LocalImage]) -> AsyncIterator[Guest]:
    guest = await boot(fc.backend(runtime, jailed=True), images, "jailed")
    yield guest
    await guest.console.close()
    await guest.backend.delete(guest.handle)


@pytest.fixture
async def plain(runtime: Path, images: dict[str, LocalImage]) -> AsyncIterator[Guest]:
    guest = await boot(fc.backend(runtime, jailed=False), images, "plain")
    yield guest
    await guest.console.close()
    await guest.backend.delete(guest.handle)


async def test_console_echo_and_guest_poweroff(plain: Guest) -> None:
    await plain.say("hello", b"#0001 hello\n")
    exit_report = asyncio.create_task(plain.backend.wait_exit(plain.handle))
    await plain.say("poweroff", b"bye\n")
    report = await asyncio.wait_for(exit_report, DEADLINE_S)
    assert report.kind is ExitKind.GUEST_POWEROFF, report
    assert (await plain.backend.status(plain.handle)).actual_state is VmState.STOPPED
    with pytest.raises(PlasmaError):
        await plain.console.write(b"nobody reads this\n")


async def test_snapshot_restore_continues_in_fresh_process(jailed: Guest) -> None:
    await jailed.say("one", b"#0001 one\n")
    await jailed.backend.snapshot(jailed.handle, "snap-1")
    await jailed.say("two", b"#0002 two\n")  # the VM runs on after the snapshot
    before = await jailed.pid()
    await jailed.backend.restore(jailed.handle, "snap-1")
    after = await jailed.pid()
    assert after != before and not is_running(before)
    mark = len(jailed.seen)
    await jailed.say("three", b"#0002 three\n")  # the count came back from the snapshot's memory
    assert fc.READY not in jailed.seen[mark:], "restore must resume, not boot"
    root = jailed.backend.paths(jailed.handle).guest
    assert sorted(p.name for p in (root / "snapshots").iterdir()) == ["snap-1"]  # no temp dir left
    report = asyncio.create_task(jailed.backend.wait_exit(jailed.handle))
    await jailed.backend.restore(jailed.handle, "snap-1")  # again: the snapshot is reusable
    assert (await report).kind is ExitKind.REQUESTED
    await jailed.say("four", b"#0002 four\n")


async def test_bad_snapshot_ids_change_nothing(jailed: Guest) -> None:
    root = jailed.backend.paths(jailed.handle).guest
    for bad in ("../escape", "", "a/b", "x" * 80):
        with pytest.raises(InvalidArgument) as err:
            await jailed.backend.snapshot(jailed.handle, bad)
        assert err.value.field == "snapshot_id"
    assert not (root / "snapshots").exists() or not any((root / "snapshots").iterdir())
    assert not (root.parent / "escape").exists()


async def test_ctrl_alt_del_stop_and_kill_deadline(plain: Guest, runtime: Path,
                                                  images: dict[str, LocalImage]) -> None:
    report = asyncio.create_task(plain.backend.wait_exit(plain.handle))
    await plain.backend.stop(plain.handle, timeout=DEADLINE_S)
    assert (await report).kind is ExitKind.REQUESTED
    assert b"ctrl-alt-del\n" in plain.seen or b"ctrl-alt-del" in await _history(plain)
    halted = await boot(plain.backend, images, "halted")  # a guest that no longer listens
    try:
        await halted.say("halt", b"halted\n")
        pid = await halted.pid()
        await halted.backend.stop(halted.handle, timeout=0.5)
        assert not is_running(pid)
        assert (await halted.backend.wait_exit(halted.handle)).kind is ExitKind.REQUESTED
    finally:
        await halted.console.close()
        await halted.backend.delete(halted.handle)


async def _history(guest: Guest) -> bytes:
    stream = await guest.backend.console(guest.handle, ConsoleType.SERIAL)
    try:
        return await stream.read()
    finally:
        await stream.close()


async def test_second_backend_instance_adopts_and_drives(jailed: Guest, runtime: Path) -> None:
    adopted = fc.backend(runtime, jailed=True)
    assert [h.vm_id for h in await adopted.handles()] == [jailed.handle.vm_id]
    handle = (await adopted.handles())[0]
    status = await adopted.status(handle)
    assert status.actual_state is VmState.RUNNING and status.host_pid == await jailed.pid()
    console = await adopted.console(handle, ConsoleType.SERIAL)
    other = Guest(adopted, handle, console, bytearray())
    try:
        await other.say("adopted", b"#0001 adopted\n")
        await adopted.snapshot(handle, "by-adopter")
        report = asyncio.create_task(adopted.wait_exit(handle))
        await adopted.stop(handle, timeout=DEADLINE_S)
        assert (await report).kind is ExitKind.REQUESTED
    finally:
        await console.close()


async def test_jail_uid_pid_namespace_cgroups_and_cleanup(jailed: Guest) -> None:
    pid = await jailed.pid()
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{fc.JAIL_UID}\s", status, re.M), status
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "firecracker must be pid 1 of its own namespace"
    chroot, guest_dir = Path(f"/proc/{pid}/root"), jailed.backend.paths(jailed.handle).guest
    assert (chroot / "vmlinux").stat().st_ino == (guest_dir / "vmlinux").stat().st_ino  # its / is the jail
    assert not (chroot / "etc").exists() and not (chroot / "usr").exists()
    opts = jailed.backend.jailer
    limits = dict(s.split("=", 1) for s in jail.cgroup_limits(opts, fc.vm("x").spec))
    cgroups = _cgroup_dirs(opts, jailed.handle.vm_id)
    assert cgroups, "the jailer put the VM in no cgroup"
    for key, value in limits.items():
        found = [d / key for d in cgroups if (d / key).exists()]
        assert found and found[0].read_text().strip() == value, key
        assert str(pid) in (found[0].parent / "cgroup.procs").read_text()
    await jailed.backend.delete(jailed.handle)
    assert not is_running(pid)
    assert not Path(jailed.handle.runtime_dir).exists()
    assert not any(d.exists() for d in cgroups)


async def test_the_vms_cpu_weight_is_set_on_their_parent_cgroup(runtime: Path) -> None:
    """`open` gives the jails' parent cgroup the configured CPU weight (`guest_cpu_weight`: v2
    `cpu.weight`, v1 `cpu.shares` x 1024 / 100), making the parent where it is missing; without one
    configured it is left alone."""
    assert fc.FIRECRACKER is not None and fc.JAILER is not None
    options = jail.JailerOptions(uid=fc.JAIL_UID, gid=fc.JAIL_UID, parent_cgroup=f"plasmavmc-w{os.getpid()}")
    version = jail.cgroup_version(options)
    parent = _cpu_hierarchy(version) / options.parent_cgroup
    name, expected = ("cpu.weight", "10") if version == "2" else ("cpu.shares", "102")
    try:
        for weight in (None, 10):
            backend = FirecrackerBackend(fc.FIRECRACKER, fc.JAILER, runtime,
                                         jailer=dataclasses.replace(options, cpu_weight=weight))
            await backend.open()
            await backend.close()
            if weight is None:
                assert not parent.exists()
        assert (parent / name).read_text().strip() == expected
    finally:
        if parent.exists():
            parent.rmdir()


def _cpu_hierarchy(version: str) -> Path:
    """Where the cgroup hierarchy with the cpu controller is mounted (v2: the unified one)."""
    for mount, fstype, options in fc.cgroup_mounts():
        if (fstype == "cgroup2" and version == "2") or (fstype == "cgroup" and "cpu" in options):
            return mount
    raise AssertionError("no cgroup hierarchy with the cpu controller is mounted")


def _cgroup_dirs(opts: jail.JailerOptions, vm_id: str) -> list[Path]:
    return fc.cgroup_dirs(opts.parent_cgroup, vm_id)


async def test_status_cpu_usage_moves(plain: Guest) -> None:
    """The guest polls its UART, so its vCPU works: CPU% becomes positive (poll-with-deadline)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    usage = (await plain.backend.status(plain.handle)).resource_usage
    while usage.cpu_percent <= 0.0:
        assert asyncio.get_running_loop().time() < deadline, usage
        await asyncio.sleep(0.2)  # sampling interval for the CPU counter, bounded by the deadline
        usage = (await plain.backend.status(plain.handle)).resource_usage
    assert usage.memory_used_mib > 0


@pytest.mark.parametrize(("change", "feature"), [
    ({"disks": (DiskSpec(bus=DiskBus.SCSI),)}, "disk_bus"),
    ({"disks": (DiskSpec(cache=DiskCache.WRITETHROUGH),)}, "disk_cache"),
    ({"network": (NetworkSpec(model=NicModel.E1000),)}, "nic_model"),
    ({"cpu": CpuSpec(vcpus=64)}, "max_vcpus"),
    ({"cpu": CpuSpec(vcpus=2, sockets=2)}, "cpu_topology"),
    ({"cpu": CpuSpec(cpu_model="host")}, "cpu_model"),
    ({"memory": MemorySpec(hugepages=True)}, "hugepages"),
    ({"security": SecuritySpec(tpm=True)}, "tpm"),
    ({"security": SecuritySpec(secure_boot=True)}, "secure_boot"),
    ({"boot": BootSpec(machine_type="q35")}, "machine_type"),
])
def test_supports_names_the_feature(change: dict[str, object], feature: str, runtime: Path) -> None:
    spec = dataclasses.replace(fc.vm("x").spec, **change)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedFeature) as err:
        fc.backend(runtime).supports(spec)
    assert err.value.feature == feature and err.value.field


async def test_refusals_change_nothing(runtime: Path, images: dict[str, LocalImage], tmp_path: Path) -> None:
    backend = fc.backend(runtime)
    bzimage = tmp_path / "bzImage"
    bzimage.write_bytes(b"MZ" + bytes(510))
    image = dataclasses.replace(images["plasmavmc-pvh"], kernel_path=bzimage)
    with pytest.raises(UnsupportedFeature) as err:
        await backend.create(fc.vm("bz"), {image.image_id: image})
    assert err.value.feature == "kernel_format"
    scsi = fc.vm("scsi")
    scsi = dataclasses.replace(scsi, spec=dataclasses.replace(scsi.spec, disks=(DiskSpec(bus=DiskBus.SCSI),)))
    with pytest.raises(UnsupportedFeature):
        await backend.create(scsi, images)
    assert not runtime.exists() or not any(runtime.iterdir())
    caps = backend.capabilities()
    assert caps.snapshots and caps.serial_console and not caps.vnc_console and not caps.hot_plug_disk
    assert caps.supported_disk_buses == (DiskBus.VIRTIO,) and caps.max_vcpus <= 32


async def test_unsupported_operations_are_refused(plain: Guest) -> None:
    with pytest.raises(UnsupportedFeature) as err:
        await plain.backend.console(plain.handle, ConsoleType.VNC)
    assert err.value.feature == "vnc_console"
    for call in (plain.backend.attach_disk(plain.handle, DiskSpec(id="d"), None),
                 plain.backend.attach_nic(plain.handle, NetworkSpec(id="n"))):
        with pytest.raises(UnsupportedFeature):
            await call
    assert (await plain.backend.status(plain.handle)).actual_state is VmState.RUNNING


def test_installed_binaries_are_the_pinned_release() -> None:
    """What scripts/install-firecracker installed is v1.12.1 with the sha256 pinned in the script."""
    script = (Path(__file__).parents[2] / "scripts" / "install-firecracker").read_text()
    pinned = dict(re.findall(r"\[(firecracker|jailer)\]=([0-9a-f]{64})", script))
    assert set(pinned) == {"firecracker", "jailer"}
    for name, path in (("firecracker", fc.FIRECRACKER), ("jailer", fc.JAILER)):
        assert path is not None
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == pinned[name], path
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=True)
        assert "v1.12.1" in version.stdout, version.stdout


async def test_api_faults_are_reported_with_firecracker_message(tmp_path: Path) -> None:
    """Our HTTP client against a real, unconfigured Firecracker: a refused request names the fault."""
    assert fc.FIRECRACKER is not None
    long_dir = tmp_path / ("d" * 90)  # the socket path exceeds sun_path: reached through /proc/self/fd
    long_dir.mkdir()
    proc = await asyncio.create_subprocess_exec(fc.FIRECRACKER, "--api-sock", "api.sock", cwd=long_dir,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        api = FirecrackerApi(long_dir / "api.sock")
        assert len(str(api.socket_path)) > 108
        await wait_for_socket(api, lambda: proc.returncode is None, DEADLINE_S)
        info = await api.get("/")
        assert info["state"] == "Not started" and info["vmm_version"] == "1.12.1", info
        with pytest.raises(HypervisorError) as err:
            await api.put("/machine-config", {"vcpu_count": 0, "mem_size_mib": 64})
        assert "400" in err.value.message and "vcpu" in err.value.message.lower(), err.value.message
        with pytest.raises(HypervisorError):
            await api.action("InstanceStart")  # no kernel configured
    finally:
        proc.kill()
        await proc.wait()


async def test_balloon_where_configured(runtime: Path, images: dict[str, LocalImage], plain: Guest) -> None:
    with pytest.raises(UnsupportedFeature):
        await plain.backend.set_balloon(plain.handle, 8)  # not configured on that backend
    ballooned = await boot(fc.backend(runtime / "b", jailed=False, balloon=True), images, "balloon")
    try:
        api = FirecrackerApi(ballooned.backend.paths(ballooned.handle).api_sock)
        got = await api.get("/balloon")
        assert got["amount_mib"] == 0 and got["deflate_on_oom"] is True, got
        # The PVH guest has no virtio driver: Firecracker refuses a new target, and we say why.
        with pytest.raises(HypervisorError) as err:
            await ballooned.backend.set_balloon(ballooned.handle, 16)
        assert "not activated" in err.value.message, err.value.message
        with pytest.raises(InvalidArgument):
            await ballooned.backend.set_balloon(ballooned.handle, -1)
        await ballooned.say("still", b"#0001 still\n")
    finally:
        await ballooned.console.close()
        await ballooned.backend.delete(ballooned.handle)


async def test_diff_snapshots_chain_and_restore(runtime: Path, images: dict[str, LocalImage]) -> None:
    """Dirty-page tracking on (jailed, unprivileged): the first snapshot of a run is Full, the next ones
    Diffs holding only what was written since; restoring any of them merges the chain correctly."""
    guest = await boot(fc.backend(runtime, jailed=True, diff_snapshots=True), images, "diffs")
    try:
        backend, handle = guest.backend, guest.handle
        await guest.say("one", b"#0001 one\n")
        await backend.snapshot(handle, "full")
        await guest.say("two", b"#0002 two\n")
        await backend.snapshot(handle, "diff-1")
        await guest.say("three", b"#0003 three\n")
        await backend.snapshot(handle, "diff-2")
        snaps = backend.paths(handle).guest / "snapshots"
        full_mem, diff_mem = snaps / "full" / "memory", snaps / "diff-2" / "memory"
        assert not (snaps / "full" / "parent").exists()
        assert (snaps / "diff-2" / "parent").read_text() == "diff-1"
        assert diff_mem.stat().st_size == full_mem.stat().st_size  # same guest memory, ...
        assert diff_mem.stat().st_blocks < full_mem.stat().st_blocks  # ... but only the dirty pages stored
        await backend.restore(handle, "diff-2")  # full + diff-1 + diff-2
        await guest.say("four", b"#0004 four\n")
        await backend.restore(handle, "diff-1")  # full + diff-1
        await guest.say("five", b"#0003 five\n")
        await backend.snapshot(handle, "after-restore")  # a Diff relative to the restored snapshot
        assert (snaps / "after-restore" / "parent").read_text() == "diff-1"
        await backend.restore(handle, "full")
        await guest.say("six", b"#0002 six\n")
        await backend.restore(handle, "after-restore")
        await guest.say("seven", b"#0004 seven\n")
    finally:
        await guest.console.close()
        await guest.backend.delete(guest.handle)


@pytest.mark.skipif(not hardware_kvm(), reason="a Linux guest under Firecracker needs hardware KVM (kvm_intel or "
                    "kvm_amd); this host's /dev/kvm is kvm_pvm, under which only the PVH test guest runs")
async def test_linux_guest_boots_where_hardware_kvm_exists(runtime: Path) -> None:
    """The project's default Linux guest (plasmavmc-tiny: vmlinux + initramfs + ext4 root) under Firecracker."""
    guest_dir = Path(os.environ.get("PLASMAVMC_GUEST_DIR", "/var/cache/plasmavmc/guest"))
    m = await build_guest(guest_dir)
    image = LocalImage(image_id="plasmavmc-tiny", disk_path=guest_dir / m.root_disk,
                       disk_format=m.root_disk_format, kernel_path=guest_dir / m.kernel,
                       initrd_path=guest_dir / m.initrd, kernel_cmdline=m.cmdline)
    vm = fc.vm("linux")
    disk = DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1)
    vm = dataclasses.replace(vm, spec=dataclasses.replace(vm.spec, disks=(disk,), memory=MemorySpec(size_mib=256)))
    backend = fc.backend(runtime)
    handle = await backend.create(vm, {image.image_id: image})
    try:
        await backend.start(handle)
        console = await backend.console(handle, ConsoleType.SERIAL)
        try:
            await read_until(console, b"PLASMAVMC-READY", bytearray(), 120)
        finally:
            await console.close()
        report = asyncio.create_task(backend.wait_exit(handle))
        await backend.stop(handle, timeout=60)
        assert (await report).kind is ExitKind.REQUESTED
    finally:
        await backend.delete(handle)
