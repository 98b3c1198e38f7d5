"""THE conformance suite of `HypervisorBackend`: every method and capability-gated feature, on every
backend of `backends.BACKEND_FACTORIES`, with that backend's real hypervisor and guest.

Boots are the expensive part (seconds each under TCG), so a module keeps two long-lived VMs per backend
(`shared`: the default machine; `hot`: one whose devices can change, where hot-plug is claimed) and
starts them concurrently; tests that end a VM (stop, kill, delete, crash) boot their own.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plasmavmc.errors import InvalidArgument, InvalidState, NotFound, PlasmaError, Unimplemented
from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, LocalImage, VmHandle
from plasmavmc.hypervisor.process import is_running
from plasmavmc.images import qemu_img
from plasmavmc.types.runtime import ExitKind
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import BootSpec, ConsoleType, DiskSpec, NetworkSpec, VmSpec
from tests.contract.backends import BACKEND_FACTORIES, BOOT_DEADLINE_S, BackendProfile, read_until, run


@pytest.fixture(scope="module", params=sorted(BACKEND_FACTORIES))
def profile(request: pytest.FixtureRequest) -> BackendProfile:
    made = BACKEND_FACTORIES[request.param]()
    if isinstance(made, str):
        pytest.skip(f"{request.param}: {made}")
    return made


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="module")
def backend(profile: BackendProfile, runtime_dir: Path) -> HypervisorBackend:
    return profile.make_backend(runtime_dir)


@pytest.fixture(scope="module")
async def images(profile: BackendProfile) -> dict[str, LocalImage]:
    return await profile.guest()


@dataclass
class Running:
    handle: VmHandle
    console: ConsoleStream


async def boot(profile: BackendProfile, backend: HypervisorBackend, images: dict[str, LocalImage],
               name: str, *, hotplug: bool = False) -> Running:
    handle = await backend.create(profile.vm(name, hotplug=hotplug), images)
    await backend.start(handle)
    console = await backend.console(handle, ConsoleType.SERIAL)
    await read_until(console, profile.ready(handle), bytearray(), BOOT_DEADLINE_S)
    return Running(handle, console)


@pytest.fixture(scope="module")
async def vms(profile: BackendProfile, backend: HypervisorBackend,
              images: dict[str, LocalImage]) -> AsyncIterator[dict[str, Running]]:
    names = ["shared"] + (["hot"] if backend.capabilities().hot_plug_disk else [])
    booted = await asyncio.gather(*(boot(profile, backend, images, n, hotplug=n == "hot") for n in names))
    yield dict(zip(names, booted, strict=True))
    for vm in booted:
        await vm.console.close()
        await backend.delete(vm.handle)


async def test_declarations(profile: BackendProfile, backend: HypervisorBackend) -> None:
    caps = backend.capabilities()
    assert caps.serial_console, "the suite drives guests over the serial console"
    assert caps.max_vcpus >= 1 and caps.max_memory_gib >= 1 and caps.supported_disk_buses
    backend.supports(profile.vm("ok").spec)
    with pytest.raises(PlasmaError) as err:
        backend.supports(VmSpec(boot=BootSpec(machine_type="no-such-machine")))
    assert err.value.field and "machine" in err.value.field


async def test_lifecycle(profile: BackendProfile, backend: HypervisorBackend,
                         images: dict[str, LocalImage]) -> None:
    vm = await boot(profile, backend, images, "life")
    handle = vm.handle
    status = await backend.status(handle)
    assert status.actual_state is VmState.RUNNING and status.host_pid and status.accelerator
    assert handle.vm_id in {h.vm_id for h in await backend.handles()}
    if profile.shell:
        assert "hi-42" in await run(vm.console, "echo hi-$((6*7))")
    with pytest.raises(InvalidState):
        await backend.start(handle)
    exit_report = asyncio.create_task(backend.wait_exit(handle))
    await backend.stop(handle, timeout=30)
    assert (await exit_report).kind is ExitKind.REQUESTED
    assert not is_running(status.host_pid)
    assert (await backend.status(handle)).actual_state is VmState.STOPPED
    await backend.stop(handle, timeout=30)  # idempotent
    await vm.console.close()
    await backend.delete(handle)
    assert handle.vm_id not in {h.vm_id for h in await backend.handles()}
    assert not Path(handle.runtime_dir).exists()
    await backend.delete(handle)  # idempotent


async def test_create_started_hands_over_a_console_to_follow(profile: BackendProfile, backend: HypervisorBackend,
                                                              images: dict[str, LocalImage]) -> None:
    """`create_started` calls `ready` once, with the VM's handle, before it returns (before the boot, where
    the backend can); a console opened there reads the guest's output to its ready line, from its first
    byte."""
    handed: list[VmHandle] = []
    reading: list[asyncio.Task[bytes]] = []

    async def follow(handle: VmHandle) -> bytes:
        console = await backend.console(handle, ConsoleType.SERIAL)
        seen = bytearray()
        try:
            await read_until(console, profile.ready(handle), seen, BOOT_DEADLINE_S)
        finally:
            await console.close()
        return bytes(seen)

    def ready(handle: VmHandle) -> None:
        handed.append(handle)
        reading.append(asyncio.create_task(follow(handle)))

    handle, _ = await backend.create_started(profile.vm("handed"), images, ready)
    try:
        assert [h.vm_id for h in handed] == [handle.vm_id]
        seen = await reading[0]
        again = await backend.console(handle, ConsoleType.SERIAL)
        history = bytearray()
        await read_until(again, profile.ready(handle), history, BOOT_DEADLINE_S)
        await again.close()
        marker = profile.ready(handle)
        assert seen[:seen.find(marker)] == history[:history.find(marker)], (seen, history)  # nothing missed
    finally:
        await backend.delete(handle)


async def test_kill_and_crash(profile: BackendProfile, backend: HypervisorBackend,
                              images: dict[str, LocalImage]) -> None:
    killed, crashed = await asyncio.gather(boot(profile, backend, images, "killed"),
                                           boot(profile, backend, images, "crashed"))
    try:
        exit_report = asyncio.create_task(backend.wait_exit(killed.handle))
        await backend.kill(killed.handle)
        assert (await exit_report).kind is ExitKind.REQUESTED
        pid = (await backend.status(crashed.handle)).host_pid
        assert pid is not None
        exit_report = asyncio.create_task(backend.wait_exit(crashed.handle))
        await asyncio.sleep(0)  # let wait_exit start waiting before the signal
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(2.0):  # the brief's bound on reporting an unexpected exit
            report = await exit_report
        assert report.kind is ExitKind.CRASHED and str(pid) in report.reason
        assert (await backend.status(crashed.handle)).actual_state is VmState.STOPPED
    finally:
        for vm in (killed, crashed):
            await vm.console.close()
            await backend.delete(vm.handle)


async def test_guest_poweroff_is_reported(profile: BackendProfile, backend: HypervisorBackend,
                                          images: dict[str, LocalImage]) -> None:
    if not profile.shell:
        return  # the guest powers off only when told to on its console
    vm = await boot(profile, backend, images, "poweroff")
    try:
        exit_report = asyncio.create_task(backend.wait_exit(vm.handle))
        await run(vm.console, "echo bye")
        await vm.console.write(b"poweroff -f\n")
        async with asyncio.timeout(60):
            report = await exit_report
        assert report.kind is ExitKind.GUEST_POWEROFF, report
        assert (await backend.status(vm.handle)).actual_state is VmState.STOPPED
    finally:
        await vm.console.close()
        await backend.delete(vm.handle)


async def test_reset_and_reboot(profile: BackendProfile, backend: HypervisorBackend,
                                vms: dict[str, Running]) -> None:
    vm = vms["shared"]
    ready = re.compile(re.escape(profile.ready(vm.handle)))
    for operation in (backend.reset, backend.reboot):
        if profile.shell:  # /run is a tmpfs: a file there survives anything but a new boot
            await run(vm.console, "echo up > /run/booted-before")
        await operation(vm.handle)
        await read_until(vm.console, ready, bytearray(), BOOT_DEADLINE_S)  # a new line: the stream had
        assert (await backend.status(vm.handle)).actual_state is VmState.RUNNING  # read past the old one
        if profile.shell:
            assert "No such file" in await run(vm.console, "cat /run/booted-before"), operation.__name__
    if profile.shell:
        assert "alive-7" in await run(vm.console, "echo alive-$((3+4))")


async def test_status_usage_counters(profile: BackendProfile, backend: HypervisorBackend,
                                     vms: dict[str, Running]) -> None:
    vm = vms["shared"]
    if profile.shell:  # make the guest read and write its disk, so the counters must move
        await run(vm.console, "dd if=/dev/zero of=/usage bs=64k count=16 && sync && cat /usage > /dev/null")
    first = (await backend.status(vm.handle)).resource_usage
    if profile.shell:
        await run(vm.console, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    second = (await backend.status(vm.handle)).resource_usage
    assert second.memory_used_mib > 0
    if not profile.shell:
        pytest.skip(f"{profile.name}: the guest has no shell to make CPU and disk work between the samples")
    assert second.cpu_percent > 0.0
    assert second.disk_write_bytes >= 1024 * 1024 and second.disk_read_bytes > 0
    assert second.disk_write_bytes >= first.disk_write_bytes


async def test_console_history_replays(profile: BackendProfile, backend: HypervisorBackend,
                                       vms: dict[str, Running]) -> None:
    vm = vms["shared"]
    if profile.shell:
        await run(vm.console, "echo history-$((40+2))")
    again = await backend.console(vm.handle, ConsoleType.SERIAL)
    try:
        await read_until(again, b"history-42" if profile.shell else profile.ready(vm.handle), bytearray(), 10)
    finally:
        await again.close()


async def test_vnc_console(backend: HypervisorBackend, vms: dict[str, Running]) -> None:
    vm = vms["shared"]
    if not backend.capabilities().vnc_console:
        with pytest.raises(PlasmaError):
            await backend.console(vm.handle, ConsoleType.VNC)
        return
    stream = await backend.console(vm.handle, ConsoleType.VNC)
    try:
        await read_until(stream, re.compile(rb"RFB 003\.00\d\n"), bytearray(), 10)  # the RFB greeting
    finally:
        await stream.close()


async def test_adoption_after_agent_restart(profile: BackendProfile, runtime_dir: Path,
                                           vms: dict[str, Running]) -> None:
    """A second backend instance on the same runtime dir is a restarted agent: it finds the VM running
    and every operation works through it."""
    vm = vms["shared"]
    adopted = profile.make_backend(runtime_dir)
    assert vm.handle.vm_id in {h.vm_id for h in await adopted.handles()}
    status = await adopted.status(vm.handle)
    assert status.actual_state is VmState.RUNNING
    console = await adopted.console(vm.handle, ConsoleType.SERIAL)
    try:
        if profile.shell:
            assert "adopted-9" in await run(console, "echo adopted-$((4+5))")
    finally:
        await console.close()
    with pytest.raises(InvalidState):
        await adopted.start(vm.handle)


async def test_snapshot_and_restore_running(profile: BackendProfile, backend: HypervisorBackend,
                                            vms: dict[str, Running]) -> None:
    vm = vms["shared"]
    if not backend.capabilities().snapshots:
        with pytest.raises(PlasmaError):
            await backend.snapshot(vm.handle, "s1")
        return
    if profile.shell:
        await run(vm.console, "echo kept > /kept && sync")
    await backend.snapshot(vm.handle, "live-1")
    with pytest.raises(PlasmaError):
        await backend.snapshot(vm.handle, "live-1")  # ids are unique per VM
    if profile.shell:
        await run(vm.console, "echo gone > /after-snapshot && sync")
        assert "gone" in await run(vm.console, "cat /after-snapshot")
    await backend.restore(vm.handle, "live-1")
    assert (await backend.status(vm.handle)).actual_state is VmState.RUNNING
    if profile.shell:
        listing = await run(vm.console, "cat /after-snapshot; cat /kept")
        assert "No such file" in listing and "kept" in listing, listing
    with pytest.raises(NotFound):
        await backend.restore(vm.handle, "no-such-snapshot")


async def test_snapshot_and_restore_stopped(profile: BackendProfile, backend: HypervisorBackend,
                                            images: dict[str, LocalImage]) -> None:
    if not backend.capabilities().snapshots:
        return  # refusal is asserted by the running variant
    handle = await backend.create(profile.vm("cold"), images)
    try:
        await backend.snapshot(handle, "cold-1")  # disk only: the VM never ran
        await backend.start(handle)
        console = await backend.console(handle, ConsoleType.SERIAL)
        await read_until(console, profile.ready(handle), bytearray(), BOOT_DEADLINE_S)
        if profile.shell:
            await run(console, "echo x > /after-cold && sync")
        await backend.stop(handle, timeout=30)
        await console.close()
        await backend.restore(handle, "cold-1")
        await backend.start(handle)
        console = await backend.console(handle, ConsoleType.SERIAL)
        await read_until(console, re.compile(rb"(?s)(" + re.escape(profile.ready(handle)) + rb".*){2}"),
                         bytearray(), BOOT_DEADLINE_S)  # history holds the first boot's line too
        if profile.shell:
            assert "No such file" in await run(console, "cat /after-cold")
        await console.close()
    finally:
        await backend.delete(handle)


async def test_hotplug_disk_seen_by_guest(profile: BackendProfile, backend: HypervisorBackend,
                                          vms: dict[str, Running]) -> None:
    if not backend.capabilities().hot_plug_disk:
        with pytest.raises(PlasmaError):
            await backend.attach_disk(vms["shared"].handle, DiskSpec(id="data"), None)
        return
    with pytest.raises(PlasmaError) as refused:  # the default machine keeps the fast boot, no hot-plug
        await backend.attach_disk(vms["shared"].handle, DiskSpec(id="data"), None)
    assert refused.value.field
    vm = vms["hot"]
    dev = profile.disk_device(1)
    await backend.attach_disk(vm.handle, DiskSpec(id="data", size_gib=1), None)
    with pytest.raises(InvalidArgument):
        await backend.attach_disk(vm.handle, DiskSpec(id="data"), None)  # ids are unique per VM
    if profile.shell:
        await _until(vm.console, f"cat /sys/block/{dev}/size", lambda out: out.strip() == str(2 * 1024**2))
        out = await run(vm.console, f"echo hotplug-data | dd of=/dev/{dev} conv=fsync 2>/dev/null; "
                                    f"dd if=/dev/{dev} bs=12 count=1 2>/dev/null")
        assert "hotplug-data" in out, out
    await backend.detach_disk(vm.handle, "data")
    if profile.shell:
        await _until(vm.console, "ls /sys/block", lambda out: dev not in out)
    with pytest.raises(InvalidArgument):
        await backend.detach_disk(vm.handle, "data")


async def test_hotplug_nic_seen_by_guest(profile: BackendProfile, backend: HypervisorBackend,
                                         vms: dict[str, Running]) -> None:
    if not backend.capabilities().hot_plug_nic:
        with pytest.raises(PlasmaError):
            await backend.attach_nic(vms["shared"].handle, NetworkSpec(id="net1"))
        return
    vm = vms["hot"]
    before = set((await run(vm.console, "ls /sys/class/net")).split())
    await backend.attach_nic(vm.handle, NetworkSpec(id="net1"))
    if profile.shell:
        await _until(vm.console, "ls /sys/class/net", lambda out: len(set(out.split()) - before) == 1)
        after = await run(vm.console, "ls /sys/class/net")
        new = (set(after.split()) - before).pop()
        mac = await run(vm.console, f"cat /sys/class/net/{new}/address")
        assert mac.strip().startswith("52:54:"), mac
    await backend.detach_nic(vm.handle, "net1")
    if profile.shell:
        await _until(vm.console, "ls /sys/class/net", lambda out: set(out.split()) == before)


async def _until(console: ConsoleStream, command: str, ok: object, deadline_s: float = 60.0) -> None:
    """Run `command` until `ok(output)` holds: the guest sees a hot-plug some time after QEMU did it."""
    assert callable(ok)
    out = ""
    try:
        async with asyncio.timeout(deadline_s):
            while not ok(out := await run(console, command)):
                await asyncio.sleep(0.5)  # polling the guest, bounded by the deadline
    except TimeoutError:
        raise AssertionError(f"{command!r} never satisfied the check; last output {out!r}") from None


async def test_export_disk(profile: BackendProfile, backend: HypervisorBackend, images: dict[str, LocalImage],
                           vms: dict[str, Running], tmp_path: Path) -> None:
    """A stopped VM's disk comes out as one self-contained image; a running VM, an unknown disk refused."""
    dest = tmp_path / "export.img"
    if not backend.capabilities().disk_export:
        with pytest.raises(Unimplemented):
            await backend.export_disk(vms["shared"].handle, "root", dest)
        return
    with pytest.raises(InvalidState, match="stop it first"):
        await backend.export_disk(vms["shared"].handle, "root", dest)
    assert not dest.exists()
    handle = await backend.create(profile.vm("export"), images)  # never started: no boot needed
    try:
        with pytest.raises(InvalidArgument) as err:
            await backend.export_disk(handle, "no-such-disk", dest)
        assert err.value.field == "disk_id" and not dest.exists()
        fmt = await backend.export_disk(handle, "root", dest)
        info = await qemu_img.inspect(dest)  # refuses an image with a backing file
        assert info.format.value == fmt
        base = next(iter(images.values()))
        assert info.virtual_size >= (await qemu_img.inspect(base.disk_path)).virtual_size
        assert [p.name for p in tmp_path.iterdir()] == [dest.name]  # no temp file left beside it
    finally:
        await backend.delete(handle)
