"""Each backend's spec check runs at CreateVm, before anything is written (issue 11, item 3).

For every backend, each feature it refuses — and an uploaded image without a kernel where the backend
boots kernels directly — answers INVALID_ARGUMENT naming the field, through the real server and agent,
with the project's VMs, the node's allocated capacity and the project's quota usage unchanged. A spec
with `sockets = 0` (what a plain gRPC client sends when it leaves the field unset) is accepted as one
socket.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import InvalidArgument
from plasmavmc.types.vm import (
    BootSpec,
    CpuSpec,
    DiskBus,
    DiskCache,
    DiskSource,
    DiskSpec,
    HypervisorType,
    MemorySpec,
    NetworkSpec,
    NicModel,
    NumaNode,
    SecuritySpec,
    VmSpec,
)
from tests.conftest import Cluster
from tests.e2e.helpers import GUEST_IMAGE, ORG, tiny_spec

PROJ = "proj-spec-refusals"
NO_KERNEL = "no-kernel"  # replaced by the uploaded image's id
KVM, FC, MV = HypervisorType.KVM, HypervisorType.FIRECRACKER, HypervisorType.MVISOR


def _spec(**changes: object) -> VmSpec:
    return replace(tiny_spec(), **changes)


def _boot(machine_type: str) -> BootSpec:
    return BootSpec(machine_type=machine_type)


def _disk(**changes: object) -> tuple[DiskSpec, ...]:
    return (replace(DiskSpec(id="root", source=DiskSource(image_id=GUEST_IMAGE)), **changes),)


# (case, hypervisor, spec, field)
REFUSED = [
    ("kvm tpm", KVM, _spec(security=SecuritySpec(tpm=True)), "spec.security.tpm"),
    ("kvm secure boot", KVM, _spec(security=SecuritySpec(secure_boot=True)), "spec.security.secure_boot"),
    ("kvm numa", KVM, _spec(memory=MemorySpec(numa_nodes=(NumaNode(cpus=(0,), memory_mib=256),))),
     "spec.memory.numa_nodes"),
    ("kvm machine type pc", KVM, _spec(boot=_boot("pc")), "spec.boot.machine_type"),
    ("kvm cpu model", KVM, _spec(cpu=CpuSpec(cpu_model="Pentium-Pro-9000")), "spec.cpu.cpu_model"),
    ("kvm hugepages", KVM, _spec(memory=MemorySpec(hugepages=True)), "spec.memory.hugepages"),
    ("kvm ide disk", KVM, _spec(disks=_disk(bus=DiskBus.IDE)), "spec.disks.bus"),
    ("kvm e1000 on microvm", KVM, _spec(network=(NetworkSpec(id="eth0", model=NicModel.E1000),)),
     "spec.network.model"),
    ("kvm image without kernel on microvm", KVM, _spec(disks=_disk(source=DiskSource(image_id=NO_KERNEL)),
                                                        boot=_boot("microvm")),
     "spec.boot.machine_type"),
    ("fc tpm", FC, _spec(security=SecuritySpec(tpm=True)), "spec.security.tpm"),
    ("fc secure boot", FC, _spec(security=SecuritySpec(secure_boot=True)), "spec.security.secure_boot"),
    ("fc numa", FC, _spec(memory=MemorySpec(numa_nodes=(NumaNode(cpus=(0,), memory_mib=256),))),
     "spec.memory.numa_nodes"),
    ("fc machine type q35", FC, _spec(boot=_boot("q35")), "spec.boot.machine_type"),
    ("fc two sockets", FC, _spec(cpu=CpuSpec(vcpus=2, sockets=2)), "spec.cpu.sockets"),
    ("fc cpu model", FC, _spec(cpu=CpuSpec(cpu_model="host")), "spec.cpu.cpu_model"),
    ("fc hugepages", FC, _spec(memory=MemorySpec(hugepages=True)), "spec.memory.hugepages"),
    ("fc 33 vcpus", FC, _spec(cpu=CpuSpec(vcpus=33)), "spec.cpu.vcpus"),
    ("fc scsi disk", FC, _spec(disks=_disk(bus=DiskBus.SCSI)), "spec.disks[0].bus"),
    ("fc writethrough cache", FC, _spec(disks=_disk(cache=DiskCache.WRITETHROUGH)), "spec.disks[0].cache"),
    ("fc e1000", FC, _spec(network=(NetworkSpec(id="eth0", model=NicModel.E1000),)), "spec.network[0].model"),
    ("fc image without kernel", FC, _spec(disks=_disk(source=DiskSource(image_id=NO_KERNEL))), "spec.disks"),
    ("mvisor tpm", MV, _spec(security=SecuritySpec(tpm=True)), "spec.security.tpm"),
    ("mvisor secure boot", MV, _spec(security=SecuritySpec(secure_boot=True)), "spec.security.secure_boot"),
    ("mvisor numa", MV, _spec(memory=MemorySpec(numa_nodes=(NumaNode(cpus=(0,), memory_mib=256),))),
     "spec.memory.numa_nodes"),
    ("mvisor machine type microvm", MV, _spec(boot=_boot("microvm")), "spec.boot.machine_type"),
    ("mvisor three vcpus", MV, _spec(cpu=CpuSpec(vcpus=3)), "spec.cpu.vcpus"),
    ("mvisor two sockets", MV, _spec(cpu=CpuSpec(vcpus=2, sockets=2)), "spec.cpu.sockets"),
    ("mvisor cpu model", MV, _spec(cpu=CpuSpec(cpu_model="host")), "spec.cpu.cpu_model"),
    ("mvisor hugepages", MV, _spec(memory=MemorySpec(hugepages=True)), "spec.memory.hugepages"),
    ("mvisor kernel args", MV, _spec(boot=BootSpec(kernel_args="quiet")), "spec.boot.kernel_args"),
    ("mvisor ide disk", MV, _spec(disks=_disk(bus=DiskBus.IDE)), "spec.disks[0].bus"),
    ("mvisor writethrough cache", MV, _spec(disks=_disk(cache=DiskCache.WRITETHROUGH)), "spec.disks[0].cache"),
    ("mvisor e1000", MV, _spec(network=(NetworkSpec(id="eth0", model=NicModel.E1000),)), "spec.network[0].model"),
    ("mvisor image with a kernel", MV, _spec(), "spec.disks"),
]


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture(scope="module")
async def no_kernel_image(client: PlasmaClient) -> str:
    """A raw disk with no kernel: q35 could boot it through firmware; microvm and Firecracker cannot."""
    image = await client.upload_image(ORG, "disk-without-kernel", _one_chunk(os.urandom(1024 * 1024)))
    assert "kernel_id" not in image.metadata
    return image.id


async def _written(client: PlasmaClient, cluster: Cluster) -> tuple[object, ...]:
    """Everything a CreateVm could have written: the project's VMs, the node's claim, the quota usage."""
    vms = await client.list_all_vms(ORG, PROJ)
    node = await client.get_node(cluster.node_id)
    quota = await client.get_quota(ORG, PROJ)
    return tuple(vm.id for vm in vms), node.allocated, quota.usage


@pytest.mark.parametrize(("case", "hypervisor", "spec", "field"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_refused_at_create_with_nothing_written(
    client: PlasmaClient, cluster: Cluster, no_kernel_image: str, case: str, hypervisor: HypervisorType,
    spec: VmSpec, field: str,
) -> None:
    disks = tuple(replace(d, source=DiskSource(image_id=no_kernel_image)) if d.source.image_id == NO_KERNEL
                  else d for d in spec.disks)
    before = await _written(client, cluster)
    with pytest.raises(InvalidArgument) as info:
        await client.create_vm("refused", ORG, PROJ, replace(spec, disks=disks), hypervisor=hypervisor)
    assert info.value.field == field, info.value
    assert "unsupported feature" in info.value.message
    assert await _written(client, cluster) == before


async def test_kernel_less_image_refusal_hints_at_q35(client: PlasmaClient, no_kernel_image: str) -> None:
    """Asked for microvm: refused with the fix; no machine asked: it follows the image (q35, firmware)."""
    spec = _spec(disks=_disk(source=DiskSource(image_id=no_kernel_image)))
    with pytest.raises(InvalidArgument, match="machine_type=q35"):
        await client.create_vm("no-kernel", ORG, PROJ, replace(spec, boot=_boot("microvm")))
    followed = await client.create_vm("no-kernel-q35", ORG, PROJ, spec)
    assert followed.spec.boot.machine_type == "q35"
    await client.delete_vm(ORG, PROJ, followed.id)


async def test_zero_sockets_is_one_socket(client: PlasmaClient, cluster: Cluster) -> None:
    vm = await client.create_vm("zero-sockets", ORG, PROJ, _spec(cpu=CpuSpec(vcpus=1, sockets=0)))
    assert vm.node_id == cluster.node_id
    await client.delete_vm(ORG, PROJ, vm.id)
