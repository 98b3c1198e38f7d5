"""The backends the `HypervisorBackend` conformance suite runs over, each with its guest profile.

Adding a backend = one `BackendProfile` factory and one entry in `BACKEND_FACTORIES`. A factory returns
the profile, or a string saying why this backend cannot run here (binary missing, ...): the suite then
skips with that reason. The profile tells the suite everything backend-specific:

* `make_backend(runtime_dir)`: a backend instance on a runtime dir. Calling it twice on the same dir is
  "the agent restarted": the second instance must re-adopt what the first started.
* `guest()`: build or locate the guest (async, cached by the profile) -> the `LocalImage`s by image id.
* `vm(name, hotplug=False)`: a `VirtualMachine` booting that guest; `hotplug=True` asks for a VM whose
  devices can change while it runs (QEMU: q35), for backends whose capabilities claim hot-plug.
* `ready(handle)`: the bytes the guest prints on its serial console once booted.
* `shell`: whether commands can be typed on the serial console (`run` below then works). Tests that
  look inside the guest (hot-plug, snapshot/restore) need it; without it they check what they can.
* `disk_device(index)` / `nic_names`: how the guest names the n-th disk and lists interfaces.

Capability-gated tests read `backend.capabilities()`: a feature claimed must work, and a feature not
claimed must be refused with a clear error (never half-done), so both branches are asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from plasmavmc.hypervisor.base import ConsoleStream, HypervisorBackend, LocalImage, VmHandle
from plasmavmc.types.vm import BootSpec, DiskSource, DiskSpec, MemorySpec, VirtualMachine, VmSpec
from tests import binaries

GUEST_DIR = Path(os.environ.get("PLASMAVMC_GUEST_DIR", "/var/cache/plasmavmc/guest"))
BOOT_DEADLINE_S = 120.0  # TCG on a busy two-core host
_marks = itertools.count(1000)


@dataclass
class BackendProfile:
    name: str
    make_backend: Callable[[Path], HypervisorBackend]
    guest: Callable[[], Awaitable[dict[str, LocalImage]]]
    vm: Callable[..., VirtualMachine]
    ready: Callable[[VmHandle], bytes]
    shell: bool = True
    disk_device: Callable[[int], str] = field(default=lambda i: f"vd{'abcdefgh'[i]}")


# ---------------------------------------------------------------- console helpers (any backend)


async def read_until(stream: ConsoleStream, pattern: bytes | re.Pattern[bytes], seen: bytearray,
                     deadline_s: float) -> bytes:
    """Read into `seen` until `pattern` (bytes, or a compiled regex) appears; return the match."""
    regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
    async with asyncio.timeout(deadline_s):
        while (found := regex.search(seen)) is None:
            chunk = await stream.read()
            if not chunk:
                raise AssertionError(f"console ended before {regex.pattern!r}; got {bytes(seen[-2000:])!r}")
            seen += chunk
    return found.group(0)


async def run(stream: ConsoleStream, command: str, deadline_s: float = 60.0) -> str:
    """Type `command` on the guest's shell and return its output (between two computed markers, which
    the typed text cannot contain: the shell expands `$((n+1))`, the echo of our typing does not)."""
    n = next(_marks)
    line = f"echo @B$(({n}+1))@; {command}; echo @E$(({n}+1))@\n"
    begin, end = f"@B{n + 1}@".encode(), f"@E{n + 1}@".encode()
    seen = bytearray()
    async with asyncio.timeout(deadline_s):
        while begin not in seen:  # the shell may not be reading yet: type again until it answers
            await stream.write(line.encode())
            with contextlib.suppress(TimeoutError):
                await read_until(stream, begin, seen, 3.0)
        await read_until(stream, end, seen, deadline_s)
    text = bytes(seen)
    out = text[text.rindex(begin) + len(begin): text.rindex(end)]
    return out.decode(errors="replace").replace("\r", "")


# ---------------------------------------------------------------- QEMU


_qemu_guest: dict[str, LocalImage] = {}


async def _qemu_images() -> dict[str, LocalImage]:
    if not _qemu_guest:
        from plasmavmc.images.guest.build import build_guest  # builds once, then verifies and reuses

        m = await build_guest(GUEST_DIR)
        _qemu_guest["plasmavmc-tiny"] = LocalImage(
            image_id="plasmavmc-tiny", disk_path=GUEST_DIR / m.root_disk, disk_format=m.root_disk_format,
            kernel_path=GUEST_DIR / m.kernel, initrd_path=GUEST_DIR / m.initrd, kernel_cmdline=m.cmdline)
    return _qemu_guest


def _qemu_vm(name: str, hotplug: bool = False) -> VirtualMachine:
    disk = DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1)
    spec = VmSpec(disks=(disk,), memory=MemorySpec(size_mib=256),
                  boot=BootSpec(machine_type="q35" if hotplug else ""))
    return VirtualMachine(id=str(uuid.uuid4()), name=name, org_id="org", project_id="proj", spec=spec)


def _qemu() -> BackendProfile | str:
    binaries.require_now("qemu-system-x86_64", "qemu-img")  # skips, or fails under CI
    qemu, qemu_img = binaries.path("qemu-system-x86_64"), binaries.path("qemu-img")
    assert qemu is not None and qemu_img is not None
    from plasmavmc.hypervisor.qemu import QemuBackend

    return BackendProfile(
        name="qemu",
        make_backend=lambda runtime: QemuBackend(qemu, qemu_img, runtime),
        guest=_qemu_images, vm=_qemu_vm,
        ready=lambda h: f"PLASMAVMC-READY name={h.name} id={h.vm_id}".encode(),
    )


BACKEND_FACTORIES: dict[str, Callable[[], BackendProfile | str]] = {
    "qemu": _qemu,
}


# ---------------------------------------------------------------- Firecracker (jailed), PVH test guest


def _firecracker() -> BackendProfile | str:
    from tests import firecracker_guest as fc

    binaries.require_now(*fc.BINARIES)
    why = fc.capability_missing()
    return why if why is not None else BackendProfile(
        name="firecracker", make_backend=fc.backend, guest=fc.images, vm=fc.vm, ready=lambda h: fc.READY,
        shell=False)


BACKEND_FACTORIES["firecracker"] = _firecracker


# ---------------------------------------------------------------- mvisor, BIOS test guest (boot sector)


def _mvisor() -> BackendProfile | str:
    import shutil
    import tempfile

    from tests import bios_guest

    why = bios_guest.mvisor_missing() or bios_guest.mvisor_cannot_boot(Path(tempfile.mkdtemp(prefix="mvprobe-")))
    if why is not None:
        return why
    from plasmavmc.hypervisor.mvisor.backend import MvisorBackend

    mvisor, qemu_img = shutil.which("mvisor"), shutil.which("qemu-img")
    assert mvisor is not None and qemu_img is not None
    disk: dict[str, LocalImage] = {}

    async def images() -> dict[str, LocalImage]:
        if not disk:
            path = await bios_guest.build_disk(Path(tempfile.mkdtemp(prefix="biosguest-")) / "disk.raw")
            disk["bios"] = LocalImage(image_id="bios", disk_path=path, disk_format="raw")
        return disk

    def vm(name: str, hotplug: bool = False) -> VirtualMachine:
        spec = VmSpec(disks=(DiskSpec(id="root", source=DiskSource(image_id="bios"), size_gib=1),),
                      memory=MemorySpec(size_mib=64))
        return VirtualMachine(id=str(uuid.uuid4()), name=name, org_id="org", project_id="proj", spec=spec)

    return BackendProfile(
        name="mvisor", make_backend=lambda runtime: MvisorBackend(mvisor, qemu_img, runtime, bios_guest.MVISOR_BIOS),
        guest=images, vm=vm, ready=lambda h: bios_guest.READY, shell=False)


BACKEND_FACTORIES["mvisor"] = _mvisor
