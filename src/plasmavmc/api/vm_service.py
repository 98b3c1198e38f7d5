"""`plasmavmc.v1.VmService`: request -> validated core call -> VirtualMachine message.

GetVm and unfiltered ListVms answer with serialized bytes (the watched copy keeps each VM rendered): the
service is registered through `wire/replies.py`, which sends bytes as they are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from plasmavmc import validation
from plasmavmc.api import caller
from plasmavmc.core.context import Core, VmRef
from plasmavmc.core.vms import devices, lifecycle, listing, power, reads, resize, run, snapshots, watch
from plasmavmc.core.vms.listing import VmFilter
from plasmavmc.errors import InvalidArgument, vm_not_found
from plasmavmc.observe.metrics import VM_READS
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import (
    CloneSource,
    DiskSpec,
    HypervisorType,
    NetworkSpec,
    RestartPolicy,
    VmSpec,
    without_secrets,
)
from plasmavmc.v1 import types_pb2, vm_pb2, vm_pb2_grpc
from plasmavmc.wire.convert import enum_from_proto, from_proto, to_proto
from plasmavmc.wire.edge import ServicerContext, stream, unary, uncancelled
from plasmavmc.wire.replies import list_reply

Ctx = ServicerContext
FROM_CACHE, FROM_STORE = VM_READS.labels("cache"), VM_READS.labels("store")


vm_msg = reads.message  # every VM this service returns goes through here (no user-data)


def _state(value: int) -> VmState:
    state = enum_from_proto(VmState, value, types_pb2.VmState.DESCRIPTOR, "states")
    if state is None:
        raise InvalidArgument("states", "VM_STATE_UNSPECIFIED is not a state to filter by")
    return state


def ref_of(msg: vm_pb2.VmRef) -> VmRef:
    return VmRef(msg.org_id, msg.project_id, msg.vm_id).validated()


class VmServicer(vm_pb2_grpc.VmServiceServicer):
    def __init__(self, core: Core, default_hypervisor: HypervisorType) -> None:
        self.core = core
        self.default_hypervisor = default_hypervisor

    @unary
    async def CreateVm(self, request: vm_pb2.CreateVmRequest, context: Ctx) -> Any:
        return vm_msg(await lifecycle.create(self.core, await self._create_request(request)))

    @stream
    async def RunVm(self, request: vm_pb2.CreateVmRequest, context: Ctx) -> AsyncIterator[Any]:
        org, project = request.org_id, request.project_id  # the create's permission is the method's own
        await caller.require("plasmavmc:vms:console", org, project, lambda: vm_not_found(org, project, request.name))
        async for item in run.run(self.core, await self._create_request(request),
                                  opened=lambda: context.send_initial_metadata(())):
            if isinstance(item, bytes):
                yield vm_pb2.RunVmResponse(console=item)
            else:
                yield vm_pb2.RunVmResponse(vm=vm_msg(item.vm), console=item.console)

    async def _create_request(self, request: vm_pb2.CreateVmRequest) -> lifecycle.CreateVm:
        """CreateVm's (and RunVm's) request as core takes it; a clone's source VM authorized first."""
        chosen = enum_from_proto(HypervisorType, request.hypervisor, types_pb2.HypervisorType.DESCRIPTOR)
        hypervisor = chosen if chosen is not None else self.default_hypervisor
        source = None
        if request.HasField("source_snapshot"):  # a clone: the source VM is authorized as the caller
            source = from_proto(CloneSource, request.source_snapshot)
            org, project, named = request.org_id, request.project_id, source.vm_id
            await caller.require("plasmavmc:vms:get", org, project, lambda: vm_not_found(org, project, named))
        return lifecycle.CreateVm(
            name=request.name,
            org_id=request.org_id,
            project_id=request.project_id,
            spec=from_proto(VmSpec, request.spec),
            hypervisor=hypervisor,
            labels=dict(request.labels),
            metadata=dict(request.metadata),
            created_by=caller.principal_id(),
            source_snapshot=source,
            spec_given=request.HasField("spec"),
            hypervisor_given=chosen is not None,
            start=request.start,
        )

    @unary
    async def GetVm(self, request: vm_pb2.GetVmRequest, context: Ctx) -> Any:
        ref = request.vm
        found = await self.core.vm_reads.find(ref.org_id, ref.project_id, ref.vm_id) if self.core.vm_reads else None
        if found is None:
            FROM_STORE.inc()
            return vm_msg((await self.core.find_vm(ref_of(ref))).value)
        FROM_CACHE.inc()
        return reads.rendered(*found)  # sent as it is (`wire/replies.py`)

    @unary
    async def ListVms(self, request: vm_pb2.ListVmsRequest, context: Ctx) -> Any:
        if not (request.states or request.node_ids or request.labels):
            kept, token = await listing.list_page(
                self.core, request.org_id, request.project_id, request.page_size, request.page_token,
                request.all_projects,
            )
            return list_reply(kept, token)  # serialized already: sent as it is (`wire/replies.py`)
        where = VmFilter(
            states=frozenset(_state(s) for s in request.states),
            node_ids=frozenset(request.node_ids),
            labels=dict(request.labels),
        )
        kept, token = await listing.list_vms(
            self.core, request.org_id, request.project_id, request.page_size, request.page_token,
            request.all_projects, where,
        )
        return list_reply(kept, token)

    @unary
    async def UpdateVm(self, request: vm_pb2.UpdateVmRequest, context: Ctx) -> Any:
        labels = dict(request.labels) if request.update_labels else None
        metadata = dict(request.metadata) if request.update_metadata else None
        policy = enum_from_proto(RestartPolicy, request.restart_policy, types_pb2.RestartPolicy.DESCRIPTOR,
                                 "restart_policy")
        change = validation.vm_resize_of(request.vcpus, request.memory_mib,
                                         ((d.disk_id, d.size_gib) for d in request.disk_sizes))
        lifecycle.check_update(labels, metadata)  # all input checked before the first write
        ref = ref_of(request.vm)
        if change:
            vm = await resize.resize(self.core, ref, change)
            if labels is None and metadata is None and policy is None:
                return vm_msg(vm)
        return vm_msg(await lifecycle.update(self.core, ref, labels, metadata, policy))

    @unary
    async def DeleteVm(self, request: vm_pb2.DeleteVmRequest, context: Ctx) -> Any:
        await lifecycle.delete(self.core, ref_of(request.vm), request.force)
        return types_pb2.Empty()

    @unary
    async def StartVm(self, request: vm_pb2.StartVmRequest, context: Ctx) -> Any:
        return vm_msg(await uncancelled(power.start(self.core, ref_of(request.vm))))

    @unary
    async def StopVm(self, request: vm_pb2.StopVmRequest, context: Ctx) -> Any:
        if request.timeout_seconds > 3600:
            raise InvalidArgument("timeout_seconds", "at most 3600")
        vm = await uncancelled(power.stop(self.core, ref_of(request.vm), request.force, request.timeout_seconds))
        return vm_msg(vm)

    @unary
    async def RebootVm(self, request: vm_pb2.RebootVmRequest, context: Ctx) -> Any:
        return vm_msg(await power.reboot(self.core, ref_of(request.vm), hard=False))

    @unary
    async def ResetVm(self, request: vm_pb2.ResetVmRequest, context: Ctx) -> Any:
        return vm_msg(await power.reboot(self.core, ref_of(request.vm), hard=True))

    @unary
    async def AttachDisk(self, request: vm_pb2.AttachDiskRequest, context: Ctx) -> Any:
        return vm_msg(await devices.attach_disk(self.core, ref_of(request.vm), from_proto(DiskSpec, request.disk)))

    @unary
    async def DetachDisk(self, request: vm_pb2.DetachDiskRequest, context: Ctx) -> Any:
        return vm_msg(await devices.detach_disk(self.core, ref_of(request.vm), request.disk_id))

    @unary
    async def AttachNic(self, request: vm_pb2.AttachNicRequest, context: Ctx) -> Any:
        return vm_msg(await devices.attach_nic(self.core, ref_of(request.vm), from_proto(NetworkSpec, request.nic)))

    @unary
    async def DetachNic(self, request: vm_pb2.DetachNicRequest, context: Ctx) -> Any:
        return vm_msg(await devices.detach_nic(self.core, ref_of(request.vm), request.nic_id))

    @unary
    async def SnapshotVm(self, request: vm_pb2.SnapshotVmRequest, context: Ctx) -> Any:
        snap = await snapshots.take(self.core, ref_of(request.vm), request.snapshot_id)
        return to_proto(snap, vm_pb2.VmSnapshot())

    @unary
    async def RestoreVm(self, request: vm_pb2.RestoreVmRequest, context: Ctx) -> Any:
        return vm_msg(await snapshots.restore(self.core, ref_of(request.vm), request.snapshot_id))

    @unary
    async def ListSnapshots(self, request: vm_pb2.ListSnapshotsRequest, context: Ctx) -> Any:
        snaps = await snapshots.list_snapshots(self.core, ref_of(request.vm))
        return vm_pb2.ListSnapshotsResponse(snapshots=[to_proto(s, vm_pb2.VmSnapshot()) for s in snaps])

    @unary
    async def DeleteSnapshot(self, request: vm_pb2.DeleteSnapshotRequest, context: Ctx) -> Any:
        await snapshots.delete(self.core, ref_of(request.vm), request.snapshot_id)
        return types_pb2.Empty()

    @stream
    async def GetConsole(self, request: vm_pb2.GetConsoleRequest, context: Ctx) -> AsyncIterator[Any]:
        if request.console_type == types_pb2.CONSOLE_TYPE_VNC:
            raise InvalidArgument("console_type", "VNC is a two-way stream: use the WebSocket console "
                                  "gateway (/v1/vms/{vm}/console?type=vnc on the HTTP port)")
        async for chunk in watch.console(self.core, ref_of(request.vm), request.follow):
            yield vm_pb2.ConsoleData(data=chunk)

    @stream
    async def WatchVm(self, request: vm_pb2.WatchVmRequest, context: Ctx) -> AsyncIterator[Any]:
        msg = request.vm
        ref = VmRef(msg.org_id, msg.project_id, msg.vm_id)  # vm_id "": the whole project (checked in core)
        if not msg.vm_id and request.send_initial:
            raise InvalidArgument("send_initial", "needs one VM (vm.vm_id)")
        events = watch.watch_vm(self.core, ref, request.send_initial, request.start_revision, request.history_only)
        async for event in events:
            if event.vm is not None:
                event = replace(event, vm=without_secrets(event.vm))
            yield to_proto(event, vm_pb2.VmEvent())
