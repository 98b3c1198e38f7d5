"""End-to-end boot tests of the ``plasmavmc-tiny`` guest image with real QEMU under TCG.

Owns: booting the image made by ``plasmavmc.images.guest.build`` on the ``microvm`` machine
(uncompressed ``vmlinux``, virtio-mmio disk) and on ``q35`` (``bzImage`` through SeaBIOS,
virtio-blk-pci disk) and checking that the guest prints ``PLASMAVMC-READY name=.. id=..`` on the
serial console, answers a command typed into its serial shell, and powers off by itself after a
QMP ``system_powerdown`` (ACPI power button). The root disk is always a qcow2 overlay over the
raw ``rootfs.ext4``, so the built image is never written.

The image is built once per test session into ``$PLASMAVMC_GUEST_DIR`` (default
``/var/cache/plasmavmc/guest``); a valid image already there is reused. Building needs root,
``apt-get`` with fresh package lists and Debian's mirror; booting needs ``qemu-system-x86_64``
and ``qemu-img``. Tests skip when the QEMU binaries are missing. Wall times from exec to the
readiness line are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from plasmavmc.images.guest.build import GuestManifest, build_guest, verify_image
from tests import binaries

DEFAULT_GUEST_DIR = "/var/cache/plasmavmc/guest"
READY_TIMEOUT = 90.0
SHELL_TIMEOUT = 30.0
POWEROFF_TIMEOUT = 60.0

pytestmark = binaries.require("qemu-system-x86_64", "qemu-img")


@dataclass(frozen=True)
class GuestImage:
    """A built image directory and its manifest."""

    path: Path
    manifest: GuestManifest

    def file(self, name: str) -> str:
        return str(self.path / name)


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """The plasmavmc-tiny image, built (or reused) once per session."""
    out = Path(os.environ.get("PLASMAVMC_GUEST_DIR", DEFAULT_GUEST_DIR))
    manifest = asyncio.run(build_guest(out))
    return GuestImage(out, manifest)


@dataclass
class SerialGuest:
    """A running QEMU whose serial console is its stdin/stdout."""

    proc: asyncio.subprocess.Process
    qmp_path: Path
    started: float
    output: bytearray = field(default_factory=bytearray)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.output += chunk
            self.changed.set()
        self.changed.set()

    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def search(self, pattern: str, timeout: float) -> re.Match[bytes] | None:
        """The first match of pattern in the serial output, or None after timeout / QEMU exit."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            if match := regex.search(self.output):
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.returncode is not None:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)

    async def wait_for(self, pattern: str, timeout: float) -> re.Match[bytes]:
        """Like search, but fails the test (showing the serial output) when there is no match."""
        match = await self.search(pattern, timeout)
        if match is None:
            pytest.fail(f"no {pattern!r} on the serial console; output:\n{self.text()}")
        return match

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


@contextlib.asynccontextmanager
async def qemu(argv: Sequence[str], qmp_path: Path) -> AsyncIterator[SerialGuest]:
    """Start QEMU, pump its serial output, and kill it on exit if it is still running."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    guest = SerialGuest(proc, qmp_path, time.monotonic())
    pump = asyncio.create_task(guest.pump())
    try:
        yield guest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pump


# fmt: off
def common_argv(qmp_path: Path) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "256", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
    ]
# fmt: on


def host_tsc_khz() -> int:
    """The host TSC frequency in kHz (under TCG the guest TSC ticks at the host's rate).

    microvm has neither HPET nor ACPI PM timer, and the kernel's PIT calibration of the TSC
    fails now and then under TCG on a busy host (``tsc: Unable to calibrate against PIT``),
    after which boot hangs; ``tsc_early_khz=`` skips that calibration.
    """
    sysfs = Path("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
    if sysfs.exists():
        return int(sysfs.read_text())
    match = re.search(r"^cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    assert match, "cannot find the host CPU frequency in /proc/cpuinfo"
    return round(float(match.group(1)) * 1000)


def cmdline(name: str, vm_id: str, extra: str = "") -> str:
    return f"console=ttyS0 quiet {extra} plasmavmc.vm_name={name} plasmavmc.vm_id={vm_id}"


# fmt: off
def microvm_argv(image: GuestImage, overlay: Path, qmp_path: Path, name: str, vm_id: str) -> list[str]:
    """microvm: PVH boot of the ELF vmlinux, ACPI on (virtio-mmio discovery + power button)."""
    return [
        *common_argv(qmp_path),
        "-machine", "microvm,acpi=on,rtc=on",
        "-kernel", image.file(image.manifest.kernel),
        "-initrd", image.file(image.manifest.initrd),
        "-append", cmdline(name, vm_id, f"pci=off tsc_early_khz={host_tsc_khz()}"),
        "-drive", f"id=root,file={overlay},format=qcow2,if=none",
        "-device", "virtio-blk-device,drive=root",
    ]


def q35_argv(image: GuestImage, overlay: Path, qmp_path: Path, name: str, vm_id: str) -> list[str]:
    """q35: the bzImage through SeaBIOS, root disk on virtio-blk-pci (hot-plug capable)."""
    return [
        *common_argv(qmp_path),
        "-machine", "q35",
        "-kernel", image.file(image.manifest.kernel_bzimage),
        "-initrd", image.file(image.manifest.initrd),
        "-append", cmdline(name, vm_id),
        "-drive", f"id=root,file={overlay},format=qcow2,if=none",
        "-device", "virtio-blk-pci,drive=root",
    ]
# fmt: on


async def make_overlay(image: GuestImage, tmp_path: Path) -> Path:
    overlay = tmp_path / "root.qcow2"
    base, base_format = image.file(image.manifest.root_disk), image.manifest.root_disk_format
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format, "-b", base, str(overlay)]
    proc = await asyncio.create_subprocess_exec(*argv)
    assert await proc.wait() == 0
    return overlay


async def qmp_connect(path: Path, deadline: float) -> QMPClient:
    """Connect to QEMU's QMP socket, polling until QEMU has created it."""
    while not path.exists():
        assert time.monotonic() < deadline, f"QMP socket {path} never appeared"
        await asyncio.sleep(0.05)
    client = QMPClient("plasmavmc-test")
    await client.connect(str(path))
    return client


async def exercise_guest(guest: SerialGuest, name: str, vm_id: str) -> float:
    """Readiness line, a serial shell command, then ACPI power-off; returns seconds to ready."""
    await guest.wait_for(rf"PLASMAVMC-READY name={name} id={vm_id}\r?\n", READY_TIMEOUT)
    ready_after = time.monotonic() - guest.started
    deadline = time.monotonic() + SHELL_TIMEOUT
    # The shell may start a moment after the readiness line: retype until it answers.
    while await guest.search(r"\nhello-42\r?\n", 0) is None:
        assert time.monotonic() < deadline, f"serial shell did not answer:\n{guest.text()}"
        await guest.send("echo hello-$((6*7))")
        await guest.search(r"\nhello-42\r?\n", 3.0)
    assert guest.output.count(b"PLASMAVMC-READY") == 1

    client = await qmp_connect(guest.qmp_path, time.monotonic() + 10)
    try:
        await client.execute("system_powerdown")
        exit_code = await asyncio.wait_for(guest.proc.wait(), POWEROFF_TIMEOUT)
    finally:
        # QEMU exiting closes the socket; disconnect() re-raises that EOF.
        with contextlib.suppress(EOFError, ConnectionError):
            await client.disconnect()
    assert exit_code == 0, guest.text()
    assert "powering off" in guest.text()
    return ready_after


@pytest.mark.asyncio
async def test_microvm_boots_answers_and_powers_off(guest_image: GuestImage, tmp_path: Path) -> None:
    overlay = await make_overlay(guest_image, tmp_path)
    qmp_path = tmp_path / "qmp.sock"
    argv = microvm_argv(guest_image, overlay, qmp_path, "t1", "abc")
    async with qemu(argv, qmp_path) as guest:
        ready_after = await exercise_guest(guest, "t1", "abc")
    print(f"\nmicrovm: exec -> PLASMAVMC-READY in {ready_after:.2f}s")


@pytest.mark.asyncio
async def test_microvm_reboots_with_readiness_each_boot(guest_image: GuestImage, tmp_path: Path) -> None:
    overlay = await make_overlay(guest_image, tmp_path)
    qmp_path = tmp_path / "qmp.sock"
    argv = microvm_argv(guest_image, overlay, qmp_path, "rb", "r-1")
    async with qemu(argv, qmp_path) as guest:
        await guest.wait_for(r"PLASMAVMC-READY name=rb id=r-1\r?\n", READY_TIMEOUT)
        await guest.send("reboot")
        await guest.wait_for(r"(?s)PLASMAVMC-READY.*PLASMAVMC-READY name=rb id=r-1\r?\n", READY_TIMEOUT)
        assert guest.proc.returncode is None


@pytest.mark.asyncio
async def test_q35_boots_bzimage_on_virtio_blk_pci(guest_image: GuestImage, tmp_path: Path) -> None:
    overlay = await make_overlay(guest_image, tmp_path)
    qmp_path = tmp_path / "qmp.sock"
    argv = q35_argv(guest_image, overlay, qmp_path, "q1", "pci-1")
    async with qemu(argv, qmp_path) as guest:
        ready_after = await exercise_guest(guest, "q1", "pci-1")
    print(f"\nq35: exec -> PLASMAVMC-READY in {ready_after:.2f}s")


async def test_missing_root_disk_is_reported_on_the_console(guest_image: GuestImage, tmp_path: Path) -> None:
    qmp_path = tmp_path / "qmp.sock"
    overlay = tmp_path / "unused.qcow2"
    argv = microvm_argv(guest_image, overlay, qmp_path, "nd", "no-disk")
    argv = argv[: argv.index("-drive")]  # no disk at all
    argv[argv.index("-append") + 1] += " plasmavmc.rootwait=2"
    async with qemu(argv, qmp_path) as guest:
        await guest.wait_for(r"PLASMAVMC-ERROR: root disk /dev/vda did not appear within 2s", READY_TIMEOUT)
        assert b"PLASMAVMC-READY" not in guest.output


def test_base_image_untouched_by_boots(guest_image: GuestImage) -> None:
    assert verify_image(guest_image.path) == guest_image.manifest


@pytest.mark.asyncio
async def test_rebuild_of_valid_image_is_a_quick_no_op(guest_image: GuestImage) -> None:
    started = time.monotonic()
    manifest = await build_guest(guest_image.path)
    assert manifest == guest_image.manifest
    assert time.monotonic() - started < 10
