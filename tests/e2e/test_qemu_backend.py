"""QemuBackend driven directly with the real guest (plasmavmc-tiny) under real QEMU.

The three VMs boot concurrently in one session fixture (each TCG boot takes a few seconds); each test
then drives its own VM. Timings go to stdout (`pytest -s`); nothing here asserts on speed except the
brief's "a SIGKILL is reported within 2 s", which is a correctness bound (pidfd wake-up), not a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError, InvalidState
from plasmavmc.hypervisor.base import ConsoleStream, ExitKind, LocalImage, VmHandle
from plasmavmc.hypervisor.process import is_running
from plasmavmc.hypervisor.qemu import QemuBackend
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import ConsoleType, DiskSource, DiskSpec, VirtualMachine, VmSpec

QEMU = shutil.which("qemu-system-x86_64")
QEMU_IMG = shutil.which("qemu-img")
pytestmark = pytest.mark.skipif(QEMU is None or QEMU_IMG is None, reason="qemu-system-x86_64 is not installed")

GUEST_DIR = Path(os.environ.get("PLASMAVMC_GUEST_DIR", "/var/cache/plasmavmc/guest"))
BOOT_DEADLINE_S = 60.0
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
async def guest() -> LocalImage:
    from plasmavmc.images.guest.build import build_guest  # builds once, then verifies and reuses

    manifest = await build_guest(GUEST_DIR)
    return LocalImage(
        image_id="plasmavmc-tiny", disk_path=GUEST_DIR / manifest.root_disk,
        disk_format=manifest.root_disk_format, kernel_path=GUEST_DIR / manifest.kernel,
        initrd_path=GUEST_DIR / manifest.initrd, kernel_cmdline=manifest.cmdline,
    )


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> QemuBackend:
    assert QEMU is not None and QEMU_IMG is not None
    return QemuBackend(QEMU, QEMU_IMG, tmp_path_factory.mktemp("runtime"))


def make_vm(name: str) -> VirtualMachine:
    disk = DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1)
    return VirtualMachine(id=str(uuid.uuid4()), name=name, org_id="org", project_id="proj",
                          spec=VmSpec(disks=(disk,)))


async def create_and_start(backend: QemuBackend, guest: LocalImage, name: str) -> VmHandle:
    t0 = time.monotonic()
    handle = await backend.create(make_vm(name), {guest.image_id: guest})
    t1 = time.monotonic()
    await backend.start(handle)
    TIMINGS[f"{name}.create_s"] = t1 - t0
    TIMINGS[f"{name}.start_s"] = time.monotonic() - t1
    TIMINGS[f"{name}.started_at"] = time.monotonic()
    return handle


@pytest.fixture(scope="session")
async def vms(backend: QemuBackend, guest: LocalImage) -> AsyncIterator[dict[str, VmHandle]]:
    names = ("life", "crash", "poweroff")
    handles = await asyncio.gather(*(create_and_start(backend, guest, n) for n in names))
    yield dict(zip(names, handles, strict=True))
    for handle in handles:
        await backend.delete(handle)
    print("\nqemu e2e timings:", {k: round(v, 3) for k, v in TIMINGS.items() if not k.endswith("started_at")})


async def read_until(stream: ConsoleStream, needle: bytes, seen: bytearray, deadline_s: float) -> None:
    """Read console output into `seen` until it contains `needle`, or fail after `deadline_s`."""
    async with asyncio.timeout(deadline_s):
        while needle not in seen:
            chunk = await stream.read()
            if not chunk:
                raise AssertionError(f"console ended before {needle!r}; got {bytes(seen[-2000:])!r}")
            seen += chunk


async def wait_ready(backend: QemuBackend, handle: VmHandle) -> tuple[ConsoleStream, bytearray]:
    stream = await backend.console(handle, ConsoleType.SERIAL)
    seen = bytearray()
    await read_until(stream, f"PLASMAVMC-READY name={handle.name} id={handle.vm_id}".encode(), seen,
                     BOOT_DEADLINE_S)
    return stream, seen


async def type_until(stream: ConsoleStream, command: bytes, needle: bytes, deadline_s: float = 20.0) -> None:
    """Type `command` until `needle` shows up: the shell may still be starting when we first type."""
    seen = bytearray()
    async with asyncio.timeout(deadline_s):
        while needle not in seen:
            await stream.write(command)
            with contextlib.suppress(TimeoutError):
                await read_until(stream, needle, seen, 1.5)


async def test_lifecycle(backend: QemuBackend, vms: dict[str, VmHandle]) -> None:
    handle = vms["life"]
    stream, _ = await wait_ready(backend, handle)
    TIMINGS["life.start_to_ready_s"] = time.monotonic() - TIMINGS["life.started_at"]
    status = await backend.status(handle)
    assert status.actual_state is VmState.RUNNING and status.host_pid and status.accelerator
    assert await backend.handles() and handle.vm_id in {h.vm_id for h in await backend.handles()}

    await type_until(stream, b"echo hi-$((6*7))\n", b"hi-42")

    # A restarted agent (a fresh backend on the same runtime dir) finds the VM and sees it run.
    adopted = QemuBackend(backend.qemu_path, backend.qemu_img_path, backend.runtime_dir)
    assert handle.vm_id in {h.vm_id for h in await adopted.handles()}
    assert (await adopted.status(handle)).actual_state is VmState.RUNNING
    with pytest.raises(InvalidState):
        await adopted.start(handle)

    t0 = time.monotonic()
    await backend.reboot(handle)
    await read_until(stream, f"PLASMAVMC-READY name=life id={handle.vm_id}".encode(), bytearray(),
                     BOOT_DEADLINE_S)
    TIMINGS["life.reboot_to_ready_s"] = time.monotonic() - t0
    await stream.close()

    pid = (await backend.status(handle)).host_pid
    assert pid is not None
    exit_report = asyncio.create_task(backend.wait_exit(handle))
    t0 = time.monotonic()
    await backend.stop(handle, timeout=20)
    TIMINGS["life.stop_s"] = time.monotonic() - t0
    assert not is_running(pid)
    assert (await exit_report).kind is ExitKind.REQUESTED
    assert (await backend.wait_exit(handle)).kind is ExitKind.REQUESTED
    assert (await backend.status(handle)).actual_state is VmState.STOPPED

    await backend.delete(handle)
    assert not Path(handle.runtime_dir).exists()
    await backend.delete(handle)  # idempotent


async def test_sigkill_is_a_crash(backend: QemuBackend, vms: dict[str, VmHandle]) -> None:
    handle = vms["crash"]
    stream, _ = await wait_ready(backend, handle)
    await stream.close()
    pid = (await backend.status(handle)).host_pid
    assert pid is not None
    exit_report = asyncio.create_task(backend.wait_exit(handle))
    await asyncio.sleep(0)  # let wait_exit open its pidfd
    os.kill(pid, signal.SIGKILL)
    async with asyncio.timeout(2.0):
        report = await exit_report
    assert report.kind is ExitKind.CRASHED and str(pid) in report.reason


async def test_guest_poweroff(backend: QemuBackend, vms: dict[str, VmHandle]) -> None:
    handle = vms["poweroff"]
    stream, _ = await wait_ready(backend, handle)
    exit_report = asyncio.create_task(backend.wait_exit(handle))
    await type_until(stream, b"echo off-$((6*7))\n", b"off-42")
    await stream.write(b"poweroff -f\n")
    async with asyncio.timeout(30.0):
        report = await exit_report
    await stream.close()
    assert report.kind is ExitKind.GUEST_POWEROFF, report
    assert (await backend.status(handle)).actual_state is VmState.STOPPED


async def test_start_failure_carries_qemu_stderr(backend: QemuBackend, guest: LocalImage) -> None:
    broken = dataclasses.replace(guest, kernel_path=Path("/nonexistent/vmlinux"))
    handle = await backend.create(make_vm("broken"), {broken.image_id: broken})
    try:
        with pytest.raises(HypervisorError, match="/nonexistent/vmlinux"):
            await backend.start(handle)
        assert (await backend.status(handle)).actual_state is VmState.STOPPED
    finally:
        await backend.delete(handle)
