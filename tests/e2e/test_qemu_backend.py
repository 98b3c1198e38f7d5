"""QEMU-only behaviour of QemuBackend with the real guest under real QEMU.

Everything every backend must do (lifecycle, crash and power-off reports, reboot/reset, consoles,
hot-plug, snapshots, adoption) is in the conformance suite, tests/contract/test_backend_conformance.py;
this file keeps what only QEMU has: its own error output surfacing when it cannot start.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.qemu import QemuBackend
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSource, DiskSpec, VirtualMachine, VmSpec
from tests import binaries
from tests.contract.backends import BACKEND_FACTORIES, BackendProfile

QEMU = binaries.path("qemu-system-x86_64")
QEMU_IMG = binaries.path("qemu-img")
pytestmark = binaries.require("qemu-system-x86_64", "qemu-img")


def make_vm(name: str) -> VirtualMachine:
    disk = DiskSpec(id="root", source=DiskSource(image_id="plasmavmc-tiny"), size_gib=1)
    return VirtualMachine(id=str(uuid.uuid4()), name=name, org_id="org", project_id="proj",
                          spec=VmSpec(disks=(disk,)))


async def test_start_failure_carries_qemu_stderr(tmp_path_factory: pytest.TempPathFactory) -> None:
    assert QEMU is not None and QEMU_IMG is not None
    profile = BACKEND_FACTORIES["qemu"]()
    assert isinstance(profile, BackendProfile)
    guest = (await profile.guest())["plasmavmc-tiny"]
    backend = QemuBackend(QEMU, QEMU_IMG, tmp_path_factory.mktemp("rt"))  # unix socket paths are short
    broken = dataclasses.replace(guest, kernel_path=Path("/nonexistent/vmlinux"))
    handle = await backend.create(make_vm("broken"), {broken.image_id: broken})
    try:
        with pytest.raises(HypervisorError, match="/nonexistent/vmlinux"):
            await backend.start(handle)
        assert (await backend.status(handle)).actual_state is VmState.STOPPED
    finally:
        await backend.delete(handle)


def test_runtime_dir_too_long_for_sockets_is_refused(tmp_path: Path) -> None:
    assert QEMU is not None and QEMU_IMG is not None
    with pytest.raises(HypervisorError, match="108"):
        QemuBackend(QEMU, QEMU_IMG, tmp_path / ("x" * 80))
