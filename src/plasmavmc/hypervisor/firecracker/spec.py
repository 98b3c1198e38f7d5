"""What a VmSpec means to Firecracker: the refusals of `supports()` and the API request bodies.

Firecracker is a microVM monitor: virtio-mmio block and net devices only, a serial console and no
display, no hot-plug (devices are fixed at InstanceStart), no live migration, no CPU models beyond its
templates, at most 32 vCPUs, direct boot of an uncompressed ELF kernel (`vmlinux`, Linux or PVH).
Everything here is a pure function of the spec, so `supports()` refuses a VM before anything starts,
naming the feature, and the bodies can be unit-tested without a Firecracker.
"""

from __future__ import annotations

import os
import re
from typing import Any

from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor.base import LocalImage, UnsupportedFeature
from plasmavmc.hypervisor.common import boot_disk, device_id, mac_address, tap_name
from plasmavmc.hypervisor.firecracker.layout import INITRD, KERNEL, disk_file
from plasmavmc.hypervisor.spec_check import BootImage
from plasmavmc.types.vm import DiskBus, DiskCache, DiskSpec, NicModel, VirtualMachine, VmSpec

MAX_VCPUS = 32
MACHINE_TYPES = ("", "microvm", "firecracker")
ELF_MAGIC = b"\x7fELF"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CACHE_TYPES = {DiskCache.NONE: "Writeback", DiskCache.WRITEBACK: "Writeback"}


def check(spec: VmSpec, boot: BootImage | None) -> None:
    """Firecracker's spec check (`spec_check.SpecCheck`): the spec, then the boot image's kernel."""
    check_spec(spec)
    if boot is not None and not boot.has_kernel:
        raise UnsupportedFeature("firmware_boot", f"image {boot.image_id} has no kernel and firecracker boots "
                                 "a kernel directly: use an image with a kernel_id, or hypervisor kvm with "
                                 "machine_type=q35", field="spec.disks")


def check_spec(spec: VmSpec) -> None:
    """Raise UnsupportedFeature for the first thing in `spec` Firecracker cannot do."""
    _check_platform(spec)
    for i, disk in enumerate(spec.disks):
        device_id(disk.id, f"spec.disks[{i}].id")
        if disk.bus is not DiskBus.VIRTIO:
            raise UnsupportedFeature("disk_bus", f"firecracker has virtio disks only, not {disk.bus.value}",
                                     field=f"spec.disks[{i}].bus")
        if disk.cache not in _CACHE_TYPES:
            raise UnsupportedFeature("disk_cache", f"firecracker cannot do cache={disk.cache.value}",
                                     field=f"spec.disks[{i}].cache")
        if disk.source.volume_id:
            raise UnsupportedFeature("volume", "firecracker disks come from images in this release",
                                     field=f"spec.disks[{i}].source")
    for i, nic in enumerate(spec.network):
        device_id(nic.id, f"spec.network[{i}].id")
        if nic.model is not NicModel.VIRTIO_NET:
            raise UnsupportedFeature("nic_model", f"firecracker has virtio-net only, not {nic.model.value}",
                                     field=f"spec.network[{i}].model")


def _check_platform(spec: VmSpec) -> None:
    refusals = (
        (spec.cpu.vcpus > MAX_VCPUS, "max_vcpus", f"firecracker runs at most {MAX_VCPUS} vCPUs", "spec.cpu.vcpus"),
        (spec.cpu.sockets > 1, "cpu_topology", "firecracker has one socket", "spec.cpu.sockets"),
        (bool(spec.cpu.cpu_model), "cpu_model", "firecracker has no CPU models", "spec.cpu.cpu_model"),
        (spec.memory.hugepages, "hugepages", "huge pages are not configured on this node",
         "spec.memory.hugepages"),
        (bool(spec.memory.numa_nodes), "numa", "firecracker has no NUMA topology", "spec.memory.numa_nodes"),
        (spec.security.secure_boot, "secure_boot", "firecracker boots kernels directly, no UEFI",
         "spec.security.secure_boot"),
        (spec.security.tpm, "tpm", "firecracker has no TPM", "spec.security.tpm"),
        (spec.boot.machine_type not in MACHINE_TYPES, "machine_type",
         f"firecracker has one machine type, not {spec.boot.machine_type!r}", "spec.boot.machine_type"),
        (spec.cloud_init is not None, "cloud_init", "firecracker attaches no cloud-init seed disk yet: use "
         "hypervisor kvm", "spec.cloud_init"),
    )
    for refused, feature, message, field in refusals:
        if refused:
            raise UnsupportedFeature(feature, message, field=field)


def check_kernel(image: LocalImage | None) -> LocalImage:
    """The boot image, which must carry an uncompressed ELF kernel."""
    if image is None or image.kernel_path is None:
        raise UnsupportedFeature("firmware_boot", "firecracker needs an image with a kernel (direct boot)",
                                 field="spec.disks")
    try:
        fd = os.open(image.kernel_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            magic = os.pread(fd, 4, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UnsupportedFeature("kernel", f"kernel {image.kernel_path} unreadable: {exc}",
                                 field="spec.disks") from exc
    if magic != ELF_MAGIC:
        raise UnsupportedFeature("kernel_format", "firecracker boots an uncompressed ELF kernel (vmlinux), "
                                 "not a bzImage", field="spec.disks")
    return image


def boot_args(vm: VirtualMachine, image: LocalImage) -> str:
    args = " ".join(a for a in (image.kernel_cmdline, vm.spec.boot.kernel_args) if a)
    if _CONTROL.search(args):
        raise UnsupportedFeature("kernel_args", "control characters in the kernel command line",
                                 field="spec.boot.kernel_args")
    return args


def machine_config(spec: VmSpec, *, track_dirty_pages: bool) -> dict[str, Any]:
    return {"vcpu_count": spec.cpu.vcpus, "mem_size_mib": spec.memory.size_mib, "smt": False,
            "track_dirty_pages": track_dirty_pages}


def boot_source(vm: VirtualMachine, image: LocalImage) -> dict[str, Any]:
    body: dict[str, Any] = {"kernel_image_path": KERNEL, "boot_args": boot_args(vm, image)}
    if image.initrd_path is not None:
        body["initrd_path"] = INITRD
    return body


def drive(spec: VmSpec, disk: DiskSpec) -> dict[str, Any]:
    root = boot_disk(spec)
    return {"drive_id": disk.id, "path_on_host": disk_file(disk.id),
            "is_root_device": root is not None and root.id == disk.id, "is_read_only": False,
            "cache_type": _CACHE_TYPES[disk.cache]}


def network_interfaces(vm: VirtualMachine) -> list[dict[str, Any]]:
    return [{"iface_id": nic.id, "host_dev_name": tap_name(vm.id, nic.id), "guest_mac": mac_address(vm.id, nic)}
            for nic in vm.spec.network]


def vm_config(vm: VirtualMachine, image: LocalImage, *, track_dirty_pages: bool, with_balloon: bool) -> dict[str, Any]:
    """The whole VM as Firecracker's `--config-file` JSON: the same bodies as the API's PUTs, one document,
    so a launch configures and starts the VM without a round trip (metrics come from `--metrics-path`)."""
    config: dict[str, Any] = {
        "machine-config": machine_config(vm.spec, track_dirty_pages=track_dirty_pages),
        "boot-source": boot_source(vm, image),
        "drives": [drive(vm.spec, disk) for disk in vm.spec.disks],
        "network-interfaces": network_interfaces(vm),
    }
    if with_balloon:
        config["balloon"] = balloon(0)
    return config


BALLOON_STATS_S = 5


def balloon(amount_mib: int) -> dict[str, Any]:
    """A virtio-balloon that deflates when the guest runs short, with statistics every few seconds."""
    return {"amount_mib": balloon_target(amount_mib), "deflate_on_oom": True,
            "stats_polling_interval_s": BALLOON_STATS_S}


def balloon_target(amount_mib: int) -> int:
    if amount_mib < 0:
        raise InvalidArgument("amount_mib", f"must not be negative, got {amount_mib}")
    return amount_mib
