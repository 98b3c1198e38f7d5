"""Disk and NIC attach/detach on the control plane: validate, ask the VM's agent, record the new spec.

A device can change on a RUNNING VM (hot-plug: the backend decides whether this VM's machine allows it,
and refuses naming the field otherwise) or a STOPPED one (it is there at the next start). The agent acts
first, then the VM's spec is written with compare-and-swap together with the project's storage usage
(`quotas.commit_charged`), retried on a conflicting write. Should recording fail for good, the agent's
change is undone, so the stored spec and the node never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from plasmavmc import validation
from plasmavmc.core import quotas
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.networks import nics, refresh
from plasmavmc.core.vms import events as vm_events
from plasmavmc.core.vms.lifecycle import BOOTABLE_FORMATS
from plasmavmc.errors import Conflict, InvalidArgument, InvalidState, PlasmaError
from plasmavmc.hypervisor.registry import check_spec_for
from plasmavmc.limits import MAX_DISKS_PER_VM, MAX_NICS_PER_VM
from plasmavmc.observe.metrics import OPERATIONS
from plasmavmc.store.base import Write
from plasmavmc.store.cas import attempts, backoff
from plasmavmc.store.records import Versioned, replace
from plasmavmc.types import codec
from plasmavmc.types.image import Image, ImageStatus
from plasmavmc.types.quota import QuotaUsage
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSpec, NetworkSpec, VirtualMachine

log = logging.getLogger(__name__)
CAN_CHANGE = (VmState.RUNNING, VmState.STOPPED)


async def _changeable(core: Core, ref: VmRef, operation: str) -> Versioned[VirtualMachine]:
    found = await core.find_vm(ref)
    if found.value.state not in CAN_CHANGE:
        raise InvalidState(f"cannot {operation} on a VM in state {found.value.state.value.upper()}: "
                           "it must be RUNNING or STOPPED")
    return found


async def _record(core: Core, ref: VmRef, change: Callable[[VirtualMachine], VirtualMachine],
                  storage_gib: int, undo: Callable[[], Awaitable[None]], operation: str) -> VirtualMachine:
    try:
        for attempt in attempts(f"{operation} on VM {ref.vm}"):
            found = await core.find_vm(ref)
            updated = change(found.value)
            write = Write(found.key, codec.dumps(updated), found.revision)
            described = vm_events.derive_writes(found.value, updated)
            try:
                await quotas.commit_charged(core.store, updated.org_id, updated.project_id,
                                            QuotaUsage(storage_gib=storage_gib), [write, *described])
            except Conflict:
                await backoff(attempt)
                continue
            OPERATIONS.labels(operation, "ok").inc()
            return updated
        raise AssertionError("unreachable: attempts() raises when exhausted")
    except PlasmaError:
        OPERATIONS.labels(operation, "error").inc()
        try:
            await undo()
        except PlasmaError as err:
            log.error("%s: undoing on the node failed too: %s", operation, err)
        raise


def _respec(vm: VirtualMachine, **changes: object) -> VirtualMachine:
    return replace(vm, spec=replace(vm.spec, **changes))


async def _image_for(core: Core, vm: VirtualMachine, disk: DiskSpec) -> Image | None:
    if disk.source.image_id is None:
        return None
    image = await core.catalog.get(vm.org_id, disk.source.image_id, field="disk.source.image_id")
    if image.status != ImageStatus.AVAILABLE or image.format not in BOOTABLE_FORMATS:
        raise InvalidArgument("disk.source.image_id", f"image {image.id} is {image.status.value} "
                              f"{image.format.value}: an available raw or qcow2 image is needed")
    if image.min_disk_gib > disk.size_gib:  # the quota charges size_gib: it must cover the virtual size
        raise InvalidArgument("disk.size_gib", f"image {image.id} needs {image.min_disk_gib} GiB")
    return image


async def attach_disk(core: Core, ref: VmRef, disk: DiskSpec) -> VirtualMachine:
    validation.attached_disk(disk)
    found = await _changeable(core, ref, "attach a disk")
    vm = found.value
    if any(d.id == disk.id for d in vm.spec.disks):
        raise InvalidArgument("disk.id", f"VM {vm.id} already has a disk {disk.id!r}")
    if len(vm.spec.disks) >= MAX_DISKS_PER_VM:
        raise InvalidArgument("disk", f"VM {vm.id} already has the most disks a VM may have ({MAX_DISKS_PER_VM})")
    check_spec_for(vm.hypervisor, _respec(vm, disks=(*vm.spec.disks, disk)).spec)
    agent = await core.agent_for(vm)
    await agent.attach_disk(vm, disk, await _image_for(core, vm, disk))
    return await _record(core, ref, lambda v: _respec(v, disks=(*v.spec.disks, disk)), disk.size_gib,
                         lambda: agent.detach_disk(vm.id, disk.id), "attach_disk")


async def detach_disk(core: Core, ref: VmRef, disk_id: str) -> VirtualMachine:
    validation.device_id(disk_id, "disk_id")
    found = await _changeable(core, ref, "detach a disk")
    vm = found.value
    disk = next((d for d in vm.spec.disks if d.id == disk_id), None)
    if disk is None:
        raise InvalidArgument("disk_id", f"VM {vm.id} has no disk {disk_id!r}")
    agent = await core.agent_for(vm)
    await agent.detach_disk(vm.id, disk_id)
    def remaining(v: VirtualMachine) -> VirtualMachine:
        return _respec(v, disks=tuple(d for d in v.spec.disks if d.id != disk_id))

    async def nothing() -> None:  # the disk file is gone on the node: there is nothing to put back
        log.error("detach_disk %s/%s: node detached it but the record was not updated", vm.id, disk_id)

    return await _record(core, ref, remaining, -disk.size_gib, nothing, "detach_disk")


async def attach_nic(core: Core, ref: VmRef, nic: NetworkSpec) -> VirtualMachine:
    validation.nic(nic, "nic")
    found = await _changeable(core, ref, "attach a NIC")
    vm = found.value
    if any(n.id == nic.id for n in vm.spec.network):
        raise InvalidArgument("nic.id", f"VM {vm.id} already has a NIC {nic.id!r}")
    if len(vm.spec.network) >= MAX_NICS_PER_VM:
        raise InvalidArgument("nic", f"VM {vm.id} already has the most NICs a VM may have ({MAX_NICS_PER_VM})")
    check_spec_for(vm.hypervisor, _respec(vm, network=(*vm.spec.network, nic)).spec)
    agent = await core.agent_for(vm)
    nic = await nics.allocate_nic(core.store, vm, nic, "nic")
    try:
        await agent.attach_nic(vm.id, nic, await nics.port_request(core.store, vm, nic))
    except PlasmaError:
        await nics.release_nic(core.store, vm, nic)
        raise
    updated = await _record(core, ref, lambda v: _respec(v, network=(*v.spec.network, nic)), 0,
                            lambda: agent.detach_nic(vm.id, nic.id), "attach_nic")
    await refresh.ports_changed(core, updated, (nic,))
    return updated


async def detach_nic(core: Core, ref: VmRef, nic_id: str) -> VirtualMachine:
    validation.device_id(nic_id, "nic_id")
    found = await _changeable(core, ref, "detach a NIC")
    vm = found.value
    nic = next((n for n in vm.spec.network if n.id == nic_id), None)
    if nic is None:
        raise InvalidArgument("nic_id", f"VM {vm.id} has no NIC {nic_id!r}")
    agent = await core.agent_for(vm)
    await agent.detach_nic(vm.id, nic_id)
    def remaining(v: VirtualMachine) -> VirtualMachine:
        return _respec(v, network=tuple(n for n in v.spec.network if n.id != nic_id))

    updated = await _record(core, ref, remaining, 0, lambda: agent.attach_nic(vm.id, nic), "detach_nic")
    await nics.release_nic(core.store, vm, nic)
    await refresh.ports_changed(core, updated, (nic,))
    return updated
