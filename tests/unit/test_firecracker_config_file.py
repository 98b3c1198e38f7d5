"""`spec.vm_config`: the VM as Firecracker's `--config-file` document, the same bodies the API's PUTs took,
so a boot from the file is the boot the API made (machine, kernel and command line, every disk, every NIC,
the balloon only where configured); paths are guest-dir relative, as the jail sees them."""

from __future__ import annotations

from pathlib import Path

from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.firecracker import api_boot, spec
from plasmavmc.types.vm import (
    CpuSpec,
    DiskSource,
    DiskSpec,
    MemorySpec,
    NetworkSpec,
    VirtualMachine,
    VmSpec,
)

IMAGE = LocalImage(image_id="img", disk_path=Path("/cache/img.raw"), disk_format="raw",
                   kernel_path=Path("/cache/vmlinux"), initrd_path=Path("/cache/initrd"),
                   kernel_cmdline="console=ttyS0")


def vm() -> VirtualMachine:
    disks = (DiskSpec(id="root", source=DiskSource(image_id="img"), size_gib=1),
             DiskSpec(id="data", source=DiskSource(image_id="img"), size_gib=2))
    return VirtualMachine(id="0d6f2a4e-0000-4000-8000-000000000001", name="v", org_id="o", project_id="p",
                          spec=VmSpec(cpu=CpuSpec(vcpus=2), memory=MemorySpec(size_mib=96), disks=disks,
                                      network=(NetworkSpec(id="eth0", network_id="n"),)))


def test_the_same_bodies_as_the_api() -> None:
    v = vm()
    config = spec.vm_config(v, IMAGE, track_dirty_pages=True, with_balloon=False)
    assert config["machine-config"] == spec.machine_config(v.spec, track_dirty_pages=True)
    assert config["machine-config"]["vcpu_count"] == 2 and config["machine-config"]["mem_size_mib"] == 96
    assert config["boot-source"] == {"kernel_image_path": "vmlinux", "initrd_path": "initrd",
                                     "boot_args": "console=ttyS0"}
    assert config["drives"] == [spec.drive(v.spec, d) for d in v.spec.disks]
    assert [(d["drive_id"], d["path_on_host"], d["is_root_device"]) for d in config["drives"]] == [
        ("root", "disk-root.raw", True), ("data", "disk-data.raw", False)]
    assert config["network-interfaces"] == spec.network_interfaces(v)
    assert config["network-interfaces"][0]["iface_id"] == "eth0"
    assert "balloon" not in config and "metrics" not in config  # metrics: `--metrics-path` at exec


def test_balloon_only_where_configured() -> None:
    config = spec.vm_config(vm(), IMAGE, track_dirty_pages=False, with_balloon=True)
    assert config["balloon"] == spec.balloon(0)
    assert config["machine-config"]["track_dirty_pages"] is False


def test_a_pooled_boot_puts_the_same_bodies_machine_first() -> None:
    """A Firecracker of the warm pool is configured over its API (`api_boot.requests`) with the config
    file's bodies: machine config first, each drive and NIC under its id, then the rest."""
    config = spec.vm_config(vm(), IMAGE, track_dirty_pages=False, with_balloon=True)
    puts = api_boot.requests(config)
    assert puts[0] == ("/machine-config", config["machine-config"])
    assert dict(puts) == {"/machine-config": config["machine-config"], "/boot-source": config["boot-source"],
                          "/drives/root": config["drives"][0], "/drives/data": config["drives"][1],
                          "/network-interfaces/eth0": config["network-interfaces"][0],
                          "/balloon": config["balloon"]}
    assert len(puts) == 6
