"""Bad input at the API edge: a clear error with the spec code and the field, and nothing written.

Runs against the real server and agent (no VM is booted: every request here must fail before that).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.errors import (
    AlreadyExists,
    ErrorCode,
    ImageNotFound,
    InvalidArgument,
    InvalidState,
    VmNotFound,
)
from plasmavmc.types.vm import CpuSpec, DiskSource, DiskSpec, MemorySpec, VmSpec
from tests.e2e.helpers import ORG, PROJECT, tiny_spec

PROJ = "proj-errors"

BAD_CREATES = [
    ("empty name", "", tiny_spec(), "name"),
    ("300-char name", "a" * 300, tiny_spec(), "name"),
    ("slash in name", "a/b", tiny_spec(), "name"),
    ("dot-dot name", "a..b", tiny_spec(), "name"),
    ("only dots", "..", tiny_spec(), "name"),
    ("0 vCPUs", "ok-name", replace(tiny_spec(), cpu=CpuSpec(vcpus=0)), "spec.cpu.vcpus"),
    ("1 MiB of memory", "ok-name", replace(tiny_spec(), memory=MemorySpec(size_mib=1)), "spec.memory.size_mib"),
    ("no disk", "ok-name", replace(tiny_spec(), disks=()), "spec.disks"),
    (
        "image id with path",
        "ok-name",
        replace(tiny_spec(), disks=(DiskSpec(source=DiskSource(image_id="../../etc/passwd")),)),
        "spec.disks[0].source.image_id",
    ),
    (
        "kernel args with quotes",
        "ok-name",
        replace(tiny_spec(), boot=replace(tiny_spec().boot, kernel_args='a" -x')),
        "spec.boot.kernel_args",
    ),
]


@pytest.mark.parametrize(("case", "name", "spec", "field"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
async def test_bad_create_names_the_field_and_writes_nothing(
    client: PlasmaClient, case: str, name: str, spec: VmSpec, field: str
) -> None:
    before = await client.list_all_vms(ORG, PROJ)
    with pytest.raises(InvalidArgument) as info:
        await client.create_vm(name, ORG, PROJ, spec)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT, info.value
    assert info.value.field == field
    assert field in info.value.message or info.value.field == field
    assert await client.list_all_vms(ORG, PROJ) == before


async def test_unknown_image_is_image_not_found(client: PlasmaClient) -> None:
    spec = replace(tiny_spec(), disks=(DiskSpec(source=DiskSource(image_id="no-such-image")),))
    with pytest.raises(ImageNotFound) as info:
        await client.create_vm("img-missing", ORG, PROJ, spec)
    assert info.value.field == "spec.disks[0].source.image_id"
    assert await client.list_all_vms(ORG, PROJ) == []


async def test_duplicate_name_in_project_is_already_exists(client: PlasmaClient) -> None:
    first = await client.create_vm("dup", ORG, PROJ, tiny_spec())
    with pytest.raises(AlreadyExists) as info:
        await client.create_vm("dup", ORG, PROJ, tiny_spec())
    assert info.value.field == "name"
    assert [vm.id for vm in await client.list_all_vms(ORG, PROJ)] == [first.id]
    # the same name in another project is fine: names are unique per project
    other = await client.create_vm("dup", ORG, PROJECT + "-other", tiny_spec())
    assert other.id != first.id
    for project, vm in ((PROJ, first), (PROJECT + "-other", other)):
        await client.delete_vm(ORG, project, vm.id)


async def test_operation_not_allowed_in_state_is_invalid_state_and_changes_nothing(client: PlasmaClient) -> None:
    vm = await client.create_vm("stopped-one", ORG, PROJ, tiny_spec())
    for op in (client.stop_vm, client.reboot_vm, client.reset_vm):
        with pytest.raises(InvalidState):
            await op(ORG, PROJ, vm.id)
    after = await client.get_vm(ORG, PROJ, vm.id)
    assert after.state == vm.state and after.updated_at == vm.updated_at
    await client.delete_vm(ORG, PROJ, vm.id)


async def test_unknown_vm_is_vm_not_found(client: PlasmaClient) -> None:
    with pytest.raises(VmNotFound):
        await client.get_vm(ORG, PROJ, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(VmNotFound):
        await client.start_vm(ORG, PROJ, "nobody")
