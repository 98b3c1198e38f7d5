"""cloud-init NoCloud: the seed's files and ISO, the spec's validation, the API's redaction of user-data,
the QEMU argv's seed drive, and the machine type following the image."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pycdlib
import pytest

from plasmavmc import validation
from plasmavmc.errors import InvalidArgument
from plasmavmc.hypervisor import cloudinit
from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.qemu import spec as qemu_spec
from plasmavmc.hypervisor.qemu.cmdline import build_argv
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.hypervisor.registry import check_spec_for, spec_defaults_for
from plasmavmc.hypervisor.spec_check import BootImage
from plasmavmc.limits import USER_DATA_MAX
from plasmavmc.types.vm import (
    CloudInitSpec,
    DiskSource,
    DiskSpec,
    HypervisorType,
    NetworkSpec,
    VirtualMachine,
    VmSpec,
    without_secrets,
)

VM_ID = "0b6f3c1e-8d4a-4c61-9a53-2f8e0f4d7a10"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKu7f0000000000000000000000000000000000000000 me@host"
SEED = CloudInitSpec(user_data="#!/bin/sh\necho hi > /root/hi\n", ssh_authorized_keys=(KEY,))
NIC = NetworkSpec(id="nic0", network_id="net", mac_address="52:54:00:12:34:56", ip_address="10.0.0.5")
IMAGE = LocalImage(image_id="img", disk_path=Path("/images/disk.qcow2"), disk_format="qcow2",
                   kernel_path=Path("/images/vmlinux"), initrd_path=None, kernel_cmdline="console=ttyS0")


def vm(seed: CloudInitSpec | None = SEED, name: str = "web-1") -> VirtualMachine:
    spec = VmSpec(disks=(DiskSpec(id="root", source=DiskSource(image_id="img")),), network=(NIC,), cloud_init=seed)
    return VirtualMachine(id=VM_ID, name=name, org_id="o", project_id="p", spec=spec)


def read_iso(data: bytes) -> tuple[str, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for name in ("meta-data", "user-data", "network-config"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue()
        return label, files
    finally:
        iso.close()


def test_seed_files_say_who_the_vm_is() -> None:
    files = cloudinit.seed_files(vm(), SEED)
    meta = json.loads(files["meta-data"])
    assert meta == {"instance-id": VM_ID, "local-hostname": "web-1", "public-keys": [KEY]}
    assert files["user-data"] == SEED.user_data.encode()
    net = json.loads(files["network-config"])
    assert net == {"version": 2, "ethernets": {"nic0": {"match": {"macaddress": "52:54:00:12:34:56"},
                                                          "dhcp4": True}}}
    named = cloudinit.seed_files(vm(), replace(SEED, hostname="db", user_data=""))
    assert json.loads(named["meta-data"])["local-hostname"] == "db"
    assert named["user-data"] == cloudinit.EMPTY_USER_DATA.encode()


def test_iso_is_a_cidata_volume_with_the_long_names() -> None:
    files = cloudinit.seed_files(vm(), SEED)
    label, back = read_iso(cloudinit.iso_image(files))
    assert label == "cidata"
    assert back == files


def test_write_seed_writes_and_removes(tmp_path: Path) -> None:
    path = cloudinit.write_seed(tmp_path, vm())
    assert path == tmp_path / cloudinit.SEED_FILE and path.stat().st_mode & 0o777 == 0o600
    assert read_iso(path.read_bytes())[1]["user-data"] == SEED.user_data.encode()
    assert cloudinit.write_seed(tmp_path, vm(seed=None)) is None
    assert not (tmp_path / cloudinit.SEED_FILE).exists()


@pytest.mark.parametrize(("seed", "field"), [
    (CloudInitSpec(user_data="x" * 10), "spec.cloud_init.user_data"),
    (CloudInitSpec(user_data="#cloud-config\n" + "a" * USER_DATA_MAX), "spec.cloud_init.user_data"),
    (CloudInitSpec(user_data="#!/bin/sh\n\x00"), "spec.cloud_init.user_data"),
    (CloudInitSpec(ssh_authorized_keys=("not a key",)), "spec.cloud_init.ssh_authorized_keys[0]"),
    (CloudInitSpec(ssh_authorized_keys=(KEY + "\nssh-rsa AAAA",)), "spec.cloud_init.ssh_authorized_keys[0]"),
    (CloudInitSpec(ssh_authorized_keys=(KEY,) * 17), "spec.cloud_init.ssh_authorized_keys"),
    (CloudInitSpec(hostname="-bad"), "spec.cloud_init.hostname"),
    (CloudInitSpec(hostname="a.b"), "spec.cloud_init.hostname"),
])
def test_bad_seed_is_refused_naming_the_field(seed: CloudInitSpec, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.vm_spec(vm(seed).spec)
    assert err.value.field == field


def test_good_seed_passes() -> None:
    validation.vm_spec(vm(replace(SEED, hostname="web-1")).spec)
    validation.vm_spec(vm(CloudInitSpec(user_data="#cloud-config\nruncmd: [true]\n")).spec)


def test_user_data_is_a_secret_in_api_output() -> None:
    shown = without_secrets(vm())
    assert shown.spec.cloud_init is not None and shown.spec.cloud_init.user_data == ""
    assert shown.spec.cloud_init.ssh_authorized_keys == (KEY,)
    assert without_secrets(vm(seed=None)) == vm(seed=None)


def test_seed_drive_is_read_only_and_last() -> None:
    paths = RuntimePaths.of(Path("/run/pv"), VM_ID)
    argv = build_argv("qemu", vm(), paths, IMAGE, "tcg")
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[-1] == f"file=/run/pv/{VM_ID}/cidata.iso,format=raw,if=none,id=cidata-drive,readonly=on"
    assert argv[-1] == "virtio-blk-device,drive=cidata-drive,id=cidata-dev"
    assert "cidata-drive" not in " ".join(build_argv("qemu", vm(seed=None), paths, IMAGE, "tcg"))


def test_machine_follows_the_image_unless_asked() -> None:
    spec = vm().spec
    no_kernel, kernel = BootImage("img", has_kernel=False), BootImage("img", has_kernel=True)
    assert spec_defaults_for(HypervisorType.KVM, spec, no_kernel).boot.machine_type == "q35"
    assert spec_defaults_for(HypervisorType.KVM, spec, kernel).boot.machine_type == ""
    asked = replace(spec, boot=replace(spec.boot, machine_type="microvm"))
    assert qemu_spec.with_image_defaults(asked, no_kernel) == asked
    with pytest.raises(InvalidArgument) as err:  # asked for microvm with a kernel-less image: refused, with the fix
        check_spec_for(HypervisorType.KVM, asked, no_kernel)
    assert err.value.field == "spec.boot.machine_type" and "q35" in err.value.message


@pytest.mark.parametrize("hypervisor", [HypervisorType.FIRECRACKER, HypervisorType.MVISOR])
def test_backends_without_a_seed_disk_refuse_cloud_init(hypervisor: HypervisorType) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_spec_for(hypervisor, vm(seed=CloudInitSpec(hostname="x")).spec)
    assert err.value.field == "spec.cloud_init"


def test_seed_survives_the_store_and_the_wire() -> None:
    from plasmavmc.types import codec
    from plasmavmc.v1 import types_pb2
    from plasmavmc.wire.convert import from_proto, to_proto

    assert codec.loads(VirtualMachine, codec.dumps(vm())) == vm()
    assert codec.loads(VirtualMachine, codec.dumps(vm(seed=None))).spec.cloud_init is None
    assert from_proto(VmSpec, to_proto(vm().spec, types_pb2.VmSpec())) == vm().spec
    assert from_proto(VmSpec, to_proto(vm(seed=None).spec, types_pb2.VmSpec())).cloud_init is None
