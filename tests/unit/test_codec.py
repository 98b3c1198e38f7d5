"""`plasmavmc.types.codec`: records survive `dumps` -> `loads` unchanged, and old readers ignore new keys."""

from __future__ import annotations

import json

from plasmavmc.types import (
    BootSpec,
    CpuSpec,
    DiskBus,
    DiskCache,
    DiskSource,
    DiskSpec,
    HypervisorType,
    Image,
    ImageFormat,
    ImageSource,
    MemorySpec,
    NetworkSpec,
    NicModel,
    Node,
    NodeCapacity,
    NodeState,
    ResourceUsage,
    SecuritySpec,
    VirtualMachine,
    Visibility,
    VmSpec,
    VmState,
    VmStatus,
)
from plasmavmc.types.codec import dumps, loads, peek, to_data
from plasmavmc.types.image import UrlSource
from plasmavmc.types.node import Taint
from plasmavmc.types.vm import Condition, NumaNode


def full_vm() -> VirtualMachine:
    """A VM with every kind of field set to a non-default value."""
    return VirtualMachine(
        id="vm-1",
        name="web",
        org_id="org",
        project_id="proj",
        state=VmState.RUNNING,
        spec=VmSpec(
            cpu=CpuSpec(vcpus=4, cores_per_socket=2, sockets=2, cpu_model="host"),
            memory=MemorySpec(
                size_mib=2048,
                hugepages=True,
                numa_nodes=(NumaNode(0, (0, 1), 1024), NumaNode(1, (2, 3), 1024)),
            ),
            disks=(
                DiskSpec("root", DiskSource(image_id="img-1"), 10, DiskBus.SCSI, DiskCache.WRITEBACK, 0),
                DiskSpec("data", DiskSource(volume_id="vol-1"), 100),
            ),
            network=(NetworkSpec("nic0", "net-1", "52:54:00:00:00:01", "10.0.0.5", NicModel.E1000, ("sg",)),),
            boot=BootSpec(kernel_args="console=ttyS0", machine_type="microvm"),
            security=SecuritySpec(secure_boot=True, tpm=True),
        ),
        status=VmStatus(
            actual_state=VmState.RUNNING,
            host_pid=4242,
            started_at=1_700_000_000,
            ip_addresses=("10.0.0.5", "fd00::5"),
            resource_usage=ResourceUsage(cpu_percent=12.5, memory_used_mib=512),
            last_error=None,
            conditions=(Condition("Ready", True, "Booted", "up", 1_700_000_001),),
            accelerator="tcg",
        ),
        node_id="node-1",
        hypervisor=HypervisorType.FIRECRACKER,
        created_at=1,
        updated_at=2,
        created_by="alice",
        metadata={"a": "1", "ünï": "cödé"},
        labels={"tier": "web"},
    )


def test_vm_roundtrip_is_equal() -> None:
    vm = full_vm()
    back = loads(VirtualMachine, dumps(vm))
    assert back == vm
    # the types come back too, not just equal-comparing strings and lists
    assert type(back.state) is VmState and type(back.hypervisor) is HypervisorType
    assert isinstance(back.spec.disks, tuple) and isinstance(back.spec.disks[0], DiskSpec)
    assert type(back.spec.disks[0].bus) is DiskBus
    assert isinstance(back.spec.memory.numa_nodes[1].cpus, tuple)
    assert back.spec.disks[1].boot_index is None and back.spec.disks[0].boot_index == 0


def test_default_vm_roundtrip() -> None:
    vm = VirtualMachine(id="v", name="n", org_id="o", project_id="p")
    assert loads(VirtualMachine, dumps(vm)) == vm


def test_dumps_is_plain_deterministic_json() -> None:
    raw = dumps(full_vm())
    data = json.loads(raw)
    assert data["state"] == "running" and data["hypervisor"] == "firecracker"
    assert data["spec"]["disks"][0]["source"] == {"image_id": "img-1", "volume_id": None}
    assert data["status"]["ip_addresses"] == ["10.0.0.5", "fd00::5"]
    assert dumps(full_vm()) == raw


def test_unknown_keys_are_ignored() -> None:
    data = to_data(full_vm())
    data["added_in_a_later_version"] = {"x": 1}
    data["spec"]["cpu"]["new_knob"] = True
    data["spec"]["disks"][0]["encryption"] = "aes"
    assert loads(VirtualMachine, json.dumps(data).encode()) == full_vm()


def test_missing_keys_take_defaults() -> None:
    raw = json.dumps({"id": "v", "name": "n", "org_id": "o", "project_id": "p", "spec": {"cpu": {}}}).encode()
    vm = loads(VirtualMachine, raw)
    assert vm == VirtualMachine(id="v", name="n", org_id="o", project_id="p")


def test_float_field_accepts_integer_json() -> None:
    data = to_data(full_vm())
    data["status"]["resource_usage"]["cpu_percent"] = 7
    vm = loads(VirtualMachine, json.dumps(data).encode())
    assert vm.status.resource_usage.cpu_percent == 7.0
    assert isinstance(vm.status.resource_usage.cpu_percent, float)


def test_image_and_node_roundtrip() -> None:
    image = Image(
        id="img-1",
        name="debian",
        visibility=Visibility.SHARED,
        shared_orgs=("a", "b"),
        source=ImageSource(url=UrlSource("https://example.org/d.qcow2")),
        format=ImageFormat.QCOW2,
        metadata={"k": "v"},
    )
    node = Node(
        id="n1",
        state=NodeState.READY,
        capacity=NodeCapacity(8, 16384, 100),
        hypervisors=(HypervisorType.KVM, HypervisorType.SIMULATED),
        labels={"zone": "a"},
        taints=(Taint("gpu", "yes"),),
    )
    assert loads(Image, dumps(image)) == image
    back = loads(Node, dumps(node))
    assert back == node and all(type(h) is HypervisorType for h in back.hypervisors)


def test_peek_decodes_just_the_named_fields() -> None:
    vm = VirtualMachine(
        id="i", name="n", org_id="o", project_id="p", spec=VmSpec(), state=VmState.RUNNING, updated_at=7
    )
    assert peek(VirtualMachine, dumps(vm), "state", "updated_at") == (VmState.RUNNING, 7)
