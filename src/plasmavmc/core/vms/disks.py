"""The disks of VMs as image sources: CreateImage(source.snapshot{vm_id, disk_id}) on the control plane.

`check()` answers everything that can be known before a byte moves, so a bad request changes nothing:
the VM must exist in the caller's org (found through its assignment record, which names org, project and
node; an unplaced VM by a scan of the org's VMs), the disk must be in its spec, and the VM must be
STOPPED — a running guest would change the disk under the copy, so it is refused with INVALID_STATE
("stop it first"). It returns the image the disk was made from (when the org can still see it), whose
boot metadata the new image inherits. `export()` streams the disk from the VM's node agent (ExportDisk:
`qemu-img convert` flattens the overlay's backing chain there); the agent checks the state again under
the backend's per-VM lock, so a start racing with the export waits for it or the export is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from plasmavmc import validation
from plasmavmc.core.context import Core
from plasmavmc.core.vms.placement import read_assignment
from plasmavmc.errors import ImageNotFound, InvalidArgument, InvalidState, VmNotFound
from plasmavmc.store import keys
from plasmavmc.store.records import decode, read
from plasmavmc.types.image import Image, SnapshotSource
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import VirtualMachine

VM_FIELD = "source.snapshot.vm_id"
DISK_FIELD = "source.snapshot.disk_id"


def vm_missing(org_id: str, vm_id: str) -> VmNotFound:
    return VmNotFound(f"VM {vm_id!r} does not exist in org {org_id!r}", field=VM_FIELD)


class VmDisks:
    """`core.images.VmDiskSource` over the control plane's store and node agents."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def locate(self, org_id: str, vm_id: str) -> VirtualMachine:
        """The VM `vm_id` of `org_id`, in whichever project (a snapshot source names no project)."""
        return await self._vm(validation.name(org_id, "org_id"), validation.vm_id(vm_id, VM_FIELD))

    async def _vm(self, org_id: str, vm_id: str) -> VirtualMachine:
        missing = vm_missing(org_id, vm_id)
        assignment = await read_assignment(self.core.store, vm_id)
        if assignment is not None:
            if assignment.org_id != org_id:
                raise missing  # another org's VM: not found, as if it did not exist
            found = await read(self.core.store, VirtualMachine, keys.vm(org_id, assignment.project_id, vm_id))
            if found is not None:
                return found.value
        for kv in await self.core.store.list_all(keys.vms_in(org_id)):
            if kv.key.rsplit("/", 1)[-1] == vm_id:
                return decode(VirtualMachine, kv).value
        raise missing

    async def check(self, org_id: str, source: SnapshotSource) -> tuple[SnapshotSource, Image | None]:
        """The canonical source and the disk's base image; raises (naming the field) if it cannot be used."""
        validation.name(org_id, "org_id")
        vm_id = validation.vm_id(source.vm_id, VM_FIELD)
        if not source.disk_id:
            raise InvalidArgument(DISK_FIELD, "required: the id of one of the VM's disks")
        vm = await self._vm(org_id, vm_id)
        disk = next((d for d in vm.spec.disks if d.id == source.disk_id), None)
        if disk is None:
            have = ", ".join(d.id for d in vm.spec.disks) or "none"
            raise InvalidArgument(DISK_FIELD, f"VM {vm.name} has no disk {source.disk_id[:64]!r} (its disks: {have})")
        if vm.state != VmState.STOPPED:
            raise InvalidState(
                f"VM {vm.name} is {vm.state.value}: stop it first (a disk is exported only from a stopped VM)",
                field=VM_FIELD,
            )
        base = None
        if disk.source.image_id:
            with contextlib.suppress(ImageNotFound):
                base = await self.core.catalog.get(org_id, disk.source.image_id)
        return SnapshotSource(vm_id=vm_id, disk_id=disk.id), base

    async def export(self, org_id: str, source: SnapshotSource) -> AsyncIterator[bytes]:
        """The disk's bytes as a standalone image, from the VM's node agent."""
        await self.check(org_id, source)  # again: time passed since the request was accepted
        vm = await self._vm(org_id, source.vm_id)
        if vm.node_id is None:
            raise InvalidState(f"VM {vm.name} is not placed on a node", field=VM_FIELD)
        agent = await self.core.agent_for(vm)
        async for chunk in agent.export_disk(vm.id, source.disk_id):
            yield chunk
