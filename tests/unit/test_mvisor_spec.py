"""mvisor's spec check and configuration builder: pure functions, checked without an mvisor."""

from __future__ import annotations

from pathlib import Path

import pytest

from plasmavmc.hypervisor.base import LocalImage, UnsupportedFeature
from plasmavmc.hypervisor.mvisor import spec
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

VM_ID = "4e5ae127-eb63-4e00-ac89-2812f81433f2"
DISK = DiskSpec(id="root", source=DiskSource(image_id="img"))


@pytest.mark.parametrize(("changed", "feature", "field"), [
    (VmSpec(cpu=CpuSpec(vcpus=3)), "cpu_topology", "spec.cpu.vcpus"),
    (VmSpec(cpu=CpuSpec(vcpus=128)), "max_vcpus", "spec.cpu.vcpus"),
    (VmSpec(cpu=CpuSpec(sockets=2)), "cpu_topology", "spec.cpu.sockets"),
    (VmSpec(cpu=CpuSpec(cpu_model="host")), "cpu_model", "spec.cpu.cpu_model"),
    (VmSpec(memory=MemorySpec(hugepages=True)), "hugepages", "spec.memory.hugepages"),
    (VmSpec(memory=MemorySpec(numa_nodes=(NumaNode(),))), "numa", "spec.memory.numa_nodes"),
    (VmSpec(security=SecuritySpec(secure_boot=True)), "secure_boot", "spec.security.secure_boot"),
    (VmSpec(security=SecuritySpec(tpm=True)), "tpm", "spec.security.tpm"),
    (VmSpec(boot=BootSpec(machine_type="microvm")), "machine_type", "spec.boot.machine_type"),
    (VmSpec(boot=BootSpec(kernel_args="quiet")), "kernel_args", "spec.boot.kernel_args"),
    (VmSpec(disks=(DiskSpec(bus=DiskBus.IDE),)), "disk_bus", "spec.disks[0].bus"),
    (VmSpec(disks=(DiskSpec(cache=DiskCache.WRITETHROUGH),)), "disk_cache", "spec.disks[0].cache"),
    (VmSpec(disks=(DiskSpec(source=DiskSource(volume_id="v")),)), "volume", "spec.disks[0].source"),
    (VmSpec(network=(NetworkSpec(model=NicModel.E1000),)), "nic_model", "spec.network[0].model"),
])
def test_refusals_name_feature_and_field(changed: VmSpec, feature: str, field: str) -> None:
    with pytest.raises(UnsupportedFeature) as err:
        spec.check_spec(changed)
    assert err.value.feature == feature and err.value.field == field


@pytest.mark.parametrize("vcpus", [1, 2, 4])
def test_runnable_specs_pass(vcpus: int) -> None:
    spec.check_spec(VmSpec(cpu=CpuSpec(vcpus=vcpus), disks=(DISK,), network=(NetworkSpec(),),
                           boot=BootSpec(machine_type="q35")))


def test_a_direct_kernel_image_is_refused_with_the_fix() -> None:
    image = LocalImage("tiny", Path("/d"), "raw", kernel_path=Path("/k"))
    with pytest.raises(UnsupportedFeature) as err:
        spec.check_boot_image(image)
    assert err.value.feature == "direct_kernel_boot" and "kernel_id" in err.value.message
    spec.check_boot_image(LocalImage("disk", Path("/d"), "raw"))  # firmware-bootable: fine


def test_configuration_has_the_vm_its_disks_and_nics() -> None:
    vm = VirtualMachine(id=VM_ID, name="web-1", org_id="o", project_id="p", spec=VmSpec(
        cpu=CpuSpec(vcpus=2), memory=MemorySpec(size_mib=512), disks=(DISK,), network=(NetworkSpec(id="nic0"),)))
    config = spec.configuration(vm, {"root": Path("/run/vm/disk-root.qcow2")}, Path("/share/bios.bin"))
    assert config["machine"] == {"memory": "512M", "vcpu": 2, "bios": "/share/bios.bin", "hypervisor": False,
                                 "debug": False}
    classes = [o["class"] for o in config["objects"]]
    assert {"q35-host", "ich9-lpc", "uart", "virtio-block", "virtio-network"} <= set(classes)
    disk = next(o for o in config["objects"] if o["class"] == "virtio-block")
    assert disk["image"] == "/run/vm/disk-root.qcow2"
    nic = next(o for o in config["objects"] if o["class"] == "virtio-network")
    assert nic["backend"] == "tap" and nic["ifname"].startswith("pv") and len(nic["ifname"]) <= 15


def test_yaml_quotes_every_string_so_no_value_changes_the_structure() -> None:
    text = spec.to_yaml({"name": 'evil"\nobjects: []', "machine": {"vcpu": 1, "hypervisor": False},
                         "objects": [{"class": "uart"}, {"class": "virtio-block", "image": "/a: b"}]})
    assert text.splitlines() == [
        'name: "evil\\"\\nobjects: []"', "machine:", "  vcpu: 1", "  hypervisor: false", "objects:",
        '  - class: "uart"', '  - class: "virtio-block"', '    image: "/a: b"']
