"""The QEMU argv builder: shape of the argv, and that user strings can never add QEMU options."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor.base import LocalImage, UnsupportedFeature
from plasmavmc.hypervisor.qemu.cmdline import build_argv, check_spec, tap_name
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.types.vm import (
    BootSpec,
    CpuSpec,
    DiskBus,
    DiskCache,
    DiskSource,
    DiskSpec,
    MemorySpec,
    NetworkSpec,
    NicModel,
    NumaNode,
    SecuritySpec,
    VirtualMachine,
    VmSpec,
)

VM_ID = "0b6f3c1e-8d4a-4c61-9a53-2f8e0f4d7a10"
IMAGE = LocalImage(image_id="img", disk_path=Path("/images/root.raw"), disk_format="raw",
                   kernel_path=Path("/images/vmlinux"), initrd_path=Path("/images/initrd.gz"),
                   kernel_cmdline="console=ttyS0 quiet")
PATHS = RuntimePaths.of(Path("/run/plasmavmc"), VM_ID)


def vm(**spec_changes: Any) -> VirtualMachine:
    spec = VmSpec(cpu=CpuSpec(vcpus=2, sockets=1), memory=MemorySpec(size_mib=512),
                  disks=(DiskSpec(id="root", source=DiskSource(image_id="img")),))
    return VirtualMachine(id=VM_ID, name="web-1", org_id="o", project_id="p", spec=replace(spec, **spec_changes))


def value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_microvm_argv() -> None:
    argv = build_argv("/usr/bin/qemu-system-x86_64", vm(), PATHS, IMAGE, "tcg", tsc_khz=2_000_000)
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert value_after(argv, "-machine") == ["microvm,acpi=on,x-option-roms=off"]
    assert value_after(argv, "-accel") == ["tcg,tb-size=64"] and value_after(argv, "-cpu") == ["max"]
    assert value_after(argv, "-smp") == ["2,sockets=1,cores=2,threads=1"]
    assert value_after(argv, "-m") == ["512M"] and value_after(argv, "-uuid") == [VM_ID]
    assert {"-nodefaults", "-no-user-config", "-daemonize"} <= set(argv)
    assert value_after(argv, "-pidfile") == [f"/run/plasmavmc/{VM_ID}/qemu.pid"]
    assert value_after(argv, "-kernel") == ["/images/vmlinux"]
    assert value_after(argv, "-append") == [
        f"console=ttyS0 quiet pci=off tsc_early_khz=2000000 plasmavmc.vm_name=web-1 plasmavmc.vm_id={VM_ID}"]
    assert value_after(argv, "-drive") == [
        f"file=/run/plasmavmc/{VM_ID}/disk-root.qcow2,format=qcow2,if=none,id=drive-root,node-name=node-root,cache=none"]
    assert value_after(argv, "-device") == ["virtio-blk-device,drive=drive-root,id=disk-root"]
    serial = value_after(argv, "-chardev")[-1]
    assert serial.startswith("socket,id=ser0,") and f"logfile=/run/plasmavmc/{VM_ID}/console.log" in serial


def test_q35_and_kvm() -> None:
    spec_vm = vm(boot=BootSpec(machine_type="q35"),
                 network=(NetworkSpec(id="nic0", model=NicModel.E1000, mac_address="52:54:00:AA:bb:01"),))
    argv = build_argv("qemu", spec_vm, PATHS, IMAGE, "kvm", tsc_khz=2_000_000)
    assert value_after(argv, "-machine") == ["q35"] and value_after(argv, "-cpu") == ["host"]
    assert "pci=off" not in value_after(argv, "-append")[0]
    assert "virtio-blk-pci,drive=drive-root,id=disk-root,bus=rp0" in value_after(argv, "-device")
    assert "pcie-root-port,id=rp5,chassis=6" in value_after(argv, "-device")  # 2 devices + 4 spare ports
    assert "e1000,netdev=net-nic0,id=nic-nic0,mac=52:54:00:aa:bb:01,bus=rp1" in value_after(argv, "-device")
    assert value_after(argv, "-netdev") == [f"tap,id=net-nic0,ifname={tap_name(VM_ID, 'nic0')},script=no,downscript=no"]
    assert len(tap_name(VM_ID, "nic0")) <= 15


def test_user_kernel_args_are_one_element() -> None:
    evil = "init=/bin/sh -drive file=/etc/shadow"
    argv = build_argv("qemu", vm(boot=BootSpec(kernel_args=evil)), PATHS, IMAGE, "tcg")
    assert argv.count("-drive") == 1  # the evil text added no option
    assert value_after(argv, "-append")[0].endswith(evil)
    with pytest.raises(InvalidArgument):
        build_argv("qemu", vm(boot=BootSpec(kernel_args="a\nb")), PATHS, IMAGE, "tcg")


@pytest.mark.parametrize("bad", ["x,file=/etc/passwd", "Root", "../etc", "a b", "", "-x", "a" * 64])
def test_disk_and_nic_ids_are_validated(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        build_argv("qemu", vm(disks=(DiskSpec(id=bad, source=DiskSource(image_id="img")),)), PATHS, IMAGE, "tcg")
    with pytest.raises(InvalidArgument):
        build_argv("qemu", vm(network=(NetworkSpec(id=bad),)), PATHS, IMAGE, "tcg")


@pytest.mark.parametrize("bad", ["x,file=/etc/passwd", "web 1", "web\n1", "-name", ""])
def test_vm_name_is_validated(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        build_argv("qemu", replace(vm(), name=bad), PATHS, IMAGE, "tcg")


def test_commas_in_paths_are_escaped() -> None:
    paths = RuntimePaths.of(Path("/run/a,b"), VM_ID)
    drive = value_after(build_argv("qemu", vm(), paths, IMAGE, "tcg"), "-drive")[0]
    assert drive.startswith(f"file=/run/a,,b/{VM_ID}/disk-root.qcow2,format=qcow2")


def test_vm_id_must_be_a_uuid() -> None:
    with pytest.raises(InvalidArgument):
        RuntimePaths.of(Path("/run"), "../../etc")
    with pytest.raises(InvalidArgument):
        RuntimePaths.of(Path("/run"), str(uuid.uuid4()).upper())


@pytest.mark.parametrize(("spec", "feature"), [
    (VmSpec(boot=BootSpec(machine_type="pc")), "machine_type"),
    (VmSpec(cpu=CpuSpec(cpu_model="evil,+vmx")), "cpu_model"),
    (VmSpec(cpu=CpuSpec(vcpus=3, sockets=2)), "cpu_topology"),
    (VmSpec(memory=MemorySpec(numa_nodes=(NumaNode(),))), "numa"),
    (VmSpec(security=SecuritySpec(tpm=True)), "tpm"),
    (VmSpec(security=SecuritySpec(secure_boot=True)), "secure_boot"),
    (VmSpec(disks=(DiskSpec(bus=DiskBus.IDE, source=DiskSource(image_id="i")),)), "disk_bus_ide"),
    (VmSpec(disks=(DiskSpec(source=DiskSource(volume_id="v")),)), "volumes"),
    (VmSpec(network=(NetworkSpec(model=NicModel.E1000),)), "nic_model_e1000"),
])
def test_check_spec_names_the_feature(spec: VmSpec, feature: str) -> None:
    with pytest.raises(UnsupportedFeature) as err:
        check_spec(spec)
    assert err.value.feature == feature


def test_cache_modes_and_cpu_model() -> None:
    disk = DiskSpec(id="data", source=DiskSource(image_id="img"), cache=DiskCache.WRITEBACK)
    argv = build_argv("qemu", vm(disks=(disk,), cpu=CpuSpec(vcpus=4, sockets=2, cpu_model="EPYC")),
                      PATHS, IMAGE, "tcg")
    assert value_after(argv, "-drive")[0].endswith(",cache=writeback")
    assert value_after(argv, "-cpu") == ["EPYC"] and value_after(argv, "-smp") == ["4,sockets=2,cores=2,threads=1"]


def test_microvm_needs_a_kernel() -> None:
    with pytest.raises(UnsupportedFeature):
        build_argv("qemu", vm(), PATHS, replace(IMAGE, kernel_path=None), "tcg")


def test_zero_sockets_means_one() -> None:
    """0 is what a plain gRPC client sends for an unset `sockets`: it must boot as one socket."""
    spec = VmSpec(cpu=CpuSpec(vcpus=2, sockets=0))
    check_spec(spec)
    argv = build_argv("qemu", vm(cpu=spec.cpu), PATHS, IMAGE, "tcg")
    assert value_after(argv, "-smp") == ["2,sockets=1,cores=2,threads=1"]
