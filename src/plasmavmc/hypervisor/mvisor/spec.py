"""What a VmSpec means to mvisor: the refusals of `supports()` and the YAML configuration it runs.

mvisor (github.com/tenclass/mvisor) is a small KVM monitor: a Q35 machine booted by SeaBIOS from a disk
(no direct kernel boot), virtio-block and virtio-network devices, a 16550 UART whose output goes to
mvisor's stdout, no control socket (no QMP: no soft power-off, no hot-plug, no runtime snapshot through a
public interface), stop by SIGTERM. Its vCPU count must be 1 or even (threads come in pairs). Its VNC server
listens on every address without authentication, so this backend does not offer it.

Everything here is a pure function of the spec, so the registry's check refuses a VM before anything is
written, naming feature and field, and the configuration can be unit-tested without an mvisor.
The configuration is complete in itself (no `base:` file), so nothing depends on mvisor's install layout
except the BIOS path the agent passes in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plasmavmc.hypervisor.base import LocalImage, UnsupportedFeature
from plasmavmc.hypervisor.common import device_id, mac_address, tap_name
from plasmavmc.hypervisor.spec_check import BootImage
from plasmavmc.types.vm import DiskBus, DiskCache, NicModel, VirtualMachine, VmSpec

MACHINE_TYPES = ("", "q35")
MAX_VCPUS = 64
CHIPSET = ("q35-host", "kvm-irqchip", "kvm-clock", "firmware-config", "dummy-device", "ich9-lpc", "ps2")


def check(spec: VmSpec, boot: BootImage | None) -> None:
    """mvisor's spec check (`spec_check.SpecCheck`): the spec, then whether the image boots by firmware."""
    check_spec(spec)
    if boot is not None and boot.has_kernel:
        raise UnsupportedFeature(
            "direct_kernel_boot", f"image {boot.image_id} boots a kernel directly; mvisor boots only by firmware "
            "from the disk's own bootloader: use an image without kernel_id (or hypervisor kvm)", field="spec.disks")


def check_spec(spec: VmSpec) -> None:
    """Raise UnsupportedFeature for the first thing in `spec` mvisor cannot run."""
    vcpus = spec.cpu.vcpus
    refusals = (
        (vcpus > MAX_VCPUS, "max_vcpus", f"mvisor runs at most {MAX_VCPUS} vCPUs", "spec.cpu.vcpus"),
        (vcpus > 1 and vcpus % 2 == 1, "cpu_topology",
         f"mvisor runs 1 or an even number of vCPUs (two threads per core), not {vcpus}", "spec.cpu.vcpus"),
        (spec.cpu.sockets > 1, "cpu_topology", "mvisor has one socket", "spec.cpu.sockets"),
        (bool(spec.cpu.cpu_model), "cpu_model", "mvisor passes the host CPU through", "spec.cpu.cpu_model"),
        (spec.memory.hugepages, "hugepages", "mvisor does not map guest memory from huge pages",
         "spec.memory.hugepages"),
        (bool(spec.memory.numa_nodes), "numa", "mvisor has no NUMA topology", "spec.memory.numa_nodes"),
        (spec.security.secure_boot, "secure_boot", "mvisor boots SeaBIOS here, no UEFI secure boot",
         "spec.security.secure_boot"),
        (spec.security.tpm, "tpm", "mvisor has no TPM", "spec.security.tpm"),
        (spec.boot.machine_type not in MACHINE_TYPES, "machine_type",
         f"mvisor runs a q35 machine, not {spec.boot.machine_type!r}", "spec.boot.machine_type"),
        (bool(spec.boot.kernel_args), "kernel_args",
         "mvisor boots by firmware from the disk's own bootloader: kernel arguments cannot be passed",
         "spec.boot.kernel_args"),
        (spec.cloud_init is not None, "cloud_init", "mvisor attaches no cloud-init seed disk yet: use "
         "hypervisor kvm", "spec.cloud_init"),
    )
    for refused, feature, message, field in refusals:
        if refused:
            raise UnsupportedFeature(feature, message, field=field)
    for i, disk in enumerate(spec.disks):
        device_id(disk.id, f"spec.disks[{i}].id")
        if disk.bus is not DiskBus.VIRTIO:
            raise UnsupportedFeature("disk_bus", f"mvisor disks are virtio here, not {disk.bus.value}",
                                     field=f"spec.disks[{i}].bus")
        if disk.cache is DiskCache.WRITETHROUGH:
            raise UnsupportedFeature("disk_cache", "mvisor has no write-through cache mode",
                                     field=f"spec.disks[{i}].cache")
        if disk.source.volume_id:
            raise UnsupportedFeature("volume", "mvisor disks come from images in this release",
                                     field=f"spec.disks[{i}].source")
    for i, nic in enumerate(spec.network):
        device_id(nic.id, f"spec.network[{i}].id")
        if nic.model is not NicModel.VIRTIO_NET:
            raise UnsupportedFeature("nic_model", f"mvisor has virtio-net here, not {nic.model.value}",
                                     field=f"spec.network[{i}].model")


def check_boot_image(image: LocalImage | None) -> None:
    """The boot image must boot by firmware: an image that carries a kernel for direct boot has no
    bootloader we can count on, and mvisor cannot load a kernel itself."""
    if image is not None and image.kernel_path is not None:
        raise UnsupportedFeature(
            "direct_kernel_boot", f"image {image.image_id} boots a kernel directly; mvisor boots only by "
            "firmware from the disk's bootloader: use an image without kernel_id (or hypervisor kvm)",
            field="spec.disks")


def configuration(vm: VirtualMachine, disks: Mapping[str, Path], bios: Path) -> dict[str, Any]:
    """The whole mvisor configuration of `vm`: machine, chipset, UART, one object per disk and NIC."""
    objects: list[dict[str, Any]] = [{"class": c} for c in CHIPSET]
    objects.append({"class": "cmos", "rtc": "gmtime"})
    objects.append({"class": "uart"})
    for disk in vm.spec.disks:
        objects.append({"class": "virtio-block", "name": f"disk-{disk.id}", "image": str(disks[disk.id])})
    for nic in vm.spec.network:
        objects.append({"class": "virtio-network", "name": f"nic-{nic.id}", "mac": mac_address(vm.id, nic),
                        "backend": "tap", "ifname": tap_name(vm.id, nic.id)})
    machine = {"memory": f"{vm.spec.memory.size_mib}M", "vcpu": vm.spec.cpu.vcpus, "bios": str(bios),
               "hypervisor": False, "debug": False}
    return {"name": vm.name, "machine": machine, "objects": objects}


def to_yaml(config: Mapping[str, Any]) -> str:
    """Block-style YAML of a configuration; every string is double-quoted (a JSON string is a valid YAML
    double-quoted scalar), so no value can break the structure whatever it holds."""
    return "".join(_lines(config, 0))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _lines(value: Mapping[str, Any] | Sequence[Any], depth: int) -> list[str]:
    pad, out = "  " * depth, []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list):
                out += [f"{pad}{key}:\n", *_lines(item, depth + 1)]
            else:
                out.append(f"{pad}{key}: {_scalar(item)}\n")
        return out
    for item in value:
        inner = _lines(item, depth + 1)
        out.append(f"{pad}- {inner[0].lstrip()}")
        out += inner[1:]
    return out
