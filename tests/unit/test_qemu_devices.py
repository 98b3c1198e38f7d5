"""Pure parts of QEMU hot-plug and snapshots, and the validation of devices at the API edge."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from plasmavmc import validation
from plasmavmc.client.console_ws import console_url
from plasmavmc.errors import InvalidArgument, NotFound
from plasmavmc.hypervisor.base import UnsupportedFeature
from plasmavmc.hypervisor.qemu import hotplug, snapshots
from plasmavmc.hypervisor.qemu.runtime import RuntimePaths
from plasmavmc.types.vm import BootSpec, DiskSource, DiskSpec, NetworkSpec, VirtualMachine, VmSpec

ROOT = DiskSpec(id="root", source=DiskSource(image_id="img"))


def vm(machine: str = "q35") -> VirtualMachine:
    spec = VmSpec(disks=(ROOT,), boot=BootSpec(machine_type=machine))
    return VirtualMachine(id=str(uuid.uuid4()), name="v", org_id="o", project_id="p", spec=spec)


def paths_for(tmp_path: Path, machine: VirtualMachine) -> RuntimePaths:
    paths = RuntimePaths.of(tmp_path, machine.id)
    paths.root.mkdir()
    return paths


def test_ports_are_claimed_and_released(tmp_path: Path) -> None:
    machine = vm()
    paths = paths_for(tmp_path, machine)
    hotplug.write_ports(paths, machine.spec)  # root on rp0, spares rp1..rp4
    claimed = [hotplug._claim_port(paths, f"disk-d{i}") for i in range(4)]
    assert claimed == ["rp1", "rp2", "rp3", "rp4"]
    with pytest.raises(UnsupportedFeature, match="hot-plug ports"):
        hotplug._claim_port(paths, "disk-d9")
    hotplug._release_port(paths, "disk-d1")
    assert hotplug._claim_port(paths, "nic-n1") == "rp2"


def test_microvm_has_no_hotplug() -> None:
    with pytest.raises(UnsupportedFeature) as err:
        hotplug.require_hotplug(vm("").spec)
    assert err.value.field == "spec.boot.machine_type"
    hotplug.require_hotplug(vm("q35").spec)


def test_spec_changes_check_ids() -> None:
    machine = vm()
    with_data = hotplug.with_disk(machine, DiskSpec(id="data"))
    assert [d.id for d in with_data.spec.disks] == ["root", "data"]
    with pytest.raises(InvalidArgument, match="already has a disk"):
        hotplug.with_disk(with_data, DiskSpec(id="data"))
    with pytest.raises(InvalidArgument, match="boot disk"):
        hotplug.without_disk(with_data, "root")
    with pytest.raises(InvalidArgument, match="no disk"):
        hotplug.without_disk(machine, "data")
    with_nic = hotplug.with_nic(machine, NetworkSpec(id="n1"))
    assert hotplug.without_nic(with_nic, "n1").spec.network == ()


def test_snapshot_records(tmp_path: Path) -> None:
    paths = paths_for(tmp_path, vm())
    assert snapshots.load(paths) == []
    snapshots._save(paths, [snapshots.Snapshot("s1", 1, True, ("root",))])
    assert snapshots.find(paths, "s1").memory
    with pytest.raises(NotFound):
        snapshots.find(paths, "s2")


async def test_snapshot_id_is_checked_before_anything(tmp_path: Path) -> None:
    paths = paths_for(tmp_path, vm())
    with pytest.raises(InvalidArgument, match="snapshot_id"):
        await snapshots.take(paths, "qemu-img", "../etc", ("root",), running=False)


def test_nic_validation() -> None:
    validation.nic(NetworkSpec(id="nic0", mac_address="52:54:00:aa:bb:cc"), "nic")
    with pytest.raises(InvalidArgument, match=r"nic\.mac_address"):
        validation.nic(NetworkSpec(id="nic0", mac_address="52:54:00:aa:bb"), "nic")
    with pytest.raises(InvalidArgument, match=r"nic\.id"):
        validation.nic(NetworkSpec(id="Nic,0"), "nic")
    validation.nic(NetworkSpec(id="nic0", ip_address="10.0.0.2"), "nic")  # IPAM hands out exactly that
    with pytest.raises(InvalidArgument, match=r"nic\.ip_address"):
        validation.nic(NetworkSpec(id="nic0", ip_address="10.0.0"), "nic")
    validation.nic(NetworkSpec(id="nic0", security_groups=("web",)), "nic")
    with pytest.raises(InvalidArgument, match=r"nic\.security_groups\[0\]"):
        validation.nic(NetworkSpec(id="nic0", security_groups=("../x",)), "nic")
    with pytest.raises(InvalidArgument, match="duplicate"):
        validation.vm_spec(VmSpec(disks=(ROOT,), network=(NetworkSpec(id="a"), NetworkSpec(id="a"))))


def test_attached_disk_may_be_blank() -> None:
    validation.attached_disk(DiskSpec(id="data", source=DiskSource()))
    with pytest.raises(InvalidArgument, match=r"disk\.size_gib"):
        validation.attached_disk(DiskSpec(id="data", size_gib=0))


def test_console_url_quotes_every_part() -> None:
    url = console_url("http://h:8081/", "o", "p", "a/b", "vnc")
    assert url == "http://h:8081/v1/orgs/o/projects/p/vms/a%2Fb/console?type=vnc"
    with pytest.raises(InvalidArgument):
        console_url("h:8081", "o", "p", "v")
