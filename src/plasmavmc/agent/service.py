"""The agent's half of `plasmavmc.agent.v1.AgentService`: VM operations the control plane calls.

Heartbeat and ReportStatus go the other way (the agent calls the control plane) and answer
UNIMPLEMENTED here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from plasmavmc import validation, validation_reports
from plasmavmc.agent import run_stream
from plasmavmc.agent.vms import NodeVms
from plasmavmc.errors import InvalidArgument, PlasmaError
from plasmavmc.hypervisor.base import HypervisorBackend, VmHandle
from plasmavmc.hypervisor.provisional import Commitment
from plasmavmc.types.image import Image
from plasmavmc.types.network import NetworkPeers, PortRequest, SecurityGroup
from plasmavmc.types.vm import ConsoleType, DiskSpec, NetworkSpec, VirtualMachine
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, types_pb2, vm_pb2
from plasmavmc.wire.convert import enum_from_proto, from_proto, to_proto
from plasmavmc.wire.edge import ServicerContext, answer_unserved, stream, unary

Ctx = ServicerContext
ON_CONTROL_PLANE = "served by the control plane, not by a node agent"
IDLE_END = 0.3  # without follow, a console stream ends once the history is sent and output pauses


def _image(image: Image, field: str) -> Image:
    """An image the control plane sends with a VM: its boot metadata reaches the hypervisor."""
    validation.name(image.id, f"{field}.id")
    validation.image_metadata(image.metadata, f"{field}.metadata")
    return image


def _device(vm_id: str, device_id: str, field: str) -> tuple[str, str]:
    """(VM id, disk/NIC/snapshot id) of a device request, both checked."""
    return validation.vm_id(vm_id), validation.device_id(device_id, field)


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, vms: NodeVms) -> None:
        self.vms = vms
        self._armed: set[asyncio.Task[Any]] = set()  # RunVm calls still waiting for their create
        self._disarming = False  # the agent stops: a waiting RunVm's cancellation is `disarm`'s

    def disarm(self) -> None:
        """End every RunVm call still waiting for its create, with no reply (the agent stops: they would
        hold the server's grace period to its end; the control plane opens new ones where it needs them).
        Their handlers' tasks are cancelled and end the call themselves (`RunVm`): a handler task that
        gRPC sees cancelled leaves its call open until the grace period ends."""
        self._disarming = True
        for task in self._armed:
            task.cancel()

    @unary
    async def CreateVm(self, request: agent_pb2.CreateVmRequest, context: Ctx) -> Any:
        return await self._created(request, request.start)

    @stream
    async def RunVm(self, request_iterator: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
        """One create+start and its console (agent.proto): the call may come before its create (armed by
        the control plane), which then arrives as its one request message; no message, no reply. A
        provisional create's word is the next message (`hypervisor/provisional.py`)."""
        await context.send_initial_metadata(())  # now: the first output then comes alone, sooner
        task = asyncio.current_task()
        assert task is not None
        self._armed.add(task)
        requests = aiter(request_iterator)
        try:
            request = await anext(requests, None)
        except asyncio.CancelledError:
            if not self._disarming:
                raise
            task.uncancel()  # `disarm`: the call ends here, answered (no reply)
            request = None
        finally:
            self._armed.discard(task)
        if request is None:
            return
        commitment = None
        if request.provisional:
            if request.ports:
                raise InvalidArgument("ports", "a provisional create takes no ports")

            async def word() -> bool:
                then = await anext(requests, None)
                return then is not None and then.committed

            commitment = Commitment(word)

        def follow(handle: VmHandle) -> AsyncGenerator[bytes]:
            return self._follow(self.vms.registry.get(handle.backend), handle, True)

        async for reply in run_stream.replies(
                lambda ready, sent: self._created(request, True, ready, sent, commitment), follow):
            yield reply

    async def _created(self, request: agent_pb2.CreateVmRequest, start: bool,
                       ready: Callable[[VmHandle], None] | None = None,
                       output_sent: asyncio.Event | None = None,
                       commitment: Commitment | None = None) -> agent_pb2.VmHandle:
        """The VM of a CreateVm (or RunVm) request made (and with `start`, started: `started` is set;
        `ready` called once its console can be followed, `output_sent` set once its first output went on;
        `commitment`: a provisional create's word)."""
        vm = from_proto(VirtualMachine, request.vm)
        validation.vm_id(vm.id, "vm.id")
        validation.name(vm.org_id, "vm.org_id")
        validation.vm_spec(vm.spec)
        if vm.source_snapshot is not None:  # a clone: its source is another VM of this node, by id
            validation.vm_id(vm.source_snapshot.vm_id, "vm.source_snapshot.vm_id")
            validation.device_id(vm.source_snapshot.snapshot_id, "vm.source_snapshot.snapshot_id")
        images = [_image(from_proto(Image, i), f"images[{n}]") for n, i in enumerate(request.images)]
        have = {i.id for i in images}
        for n, disk in enumerate(vm.spec.disks):
            if disk.source.image_id not in have:
                raise InvalidArgument(f"vm.spec.disks[{n}].source.image_id", "no such image in the request's images")
        ports = [from_proto(PortRequest, p) for p in request.ports]
        if not start:
            return to_proto(await self.vms.create(vm, images, ports), agent_pb2.VmHandle())
        handle, status = await self.vms.create_started(vm, images, ports, ready, output_sent=output_sent,
                                                       commitment=commitment)
        reply = to_proto(handle, agent_pb2.VmHandle())
        reply.started.CopyFrom(to_proto(status, types_pb2.VmStatus()))
        return reply

    @unary
    async def StartVm(self, request: agent_pb2.StartVmRequest, context: Ctx) -> Any:
        await self.vms.start(validation.vm_id(request.vm_id))
        return types_pb2.Empty()

    @unary
    async def StopVm(self, request: agent_pb2.StopVmRequest, context: Ctx) -> Any:
        await self.vms.stop(validation.vm_id(request.vm_id), float(request.timeout_seconds or 30), request.force)
        return types_pb2.Empty()

    @unary
    async def DeleteVm(self, request: agent_pb2.DeleteVmRequest, context: Ctx) -> Any:
        await self.vms.delete(validation.vm_id(request.vm_id))
        return types_pb2.Empty()

    @unary
    async def GetVmStatus(self, request: agent_pb2.GetVmStatusRequest, context: Ctx) -> Any:
        status = await self.vms.status(validation.vm_id(request.vm_id))
        return to_proto(status, types_pb2.VmStatus())

    @unary
    async def RebootVm(self, request: agent_pb2.VmOperationRequest, context: Ctx) -> Any:
        await self.vms.restart(validation.vm_id(request.vm_id), hard=False)
        return types_pb2.Empty()

    @unary
    async def ResetVm(self, request: agent_pb2.VmOperationRequest, context: Ctx) -> Any:
        await self.vms.restart(validation.vm_id(request.vm_id), hard=True)
        return types_pb2.Empty()

    @unary
    async def KillVm(self, request: agent_pb2.VmOperationRequest, context: Ctx) -> Any:
        await self.vms.kill(validation.vm_id(request.vm_id))
        return types_pb2.Empty()

    @stream
    async def StreamConsole(self, request: agent_pb2.StreamConsoleRequest, context: Ctx) -> AsyncIterator[Any]:
        async for data in self._console(validation.vm_id(request.vm_id), request.follow):
            yield vm_pb2.ConsoleData(data=data)

    def _console(self, vm_id: str, follow: bool) -> AsyncIterator[bytes]:
        return self._follow(*self.vms.lookup(vm_id), follow)

    async def _follow(self, backend: HypervisorBackend, handle: VmHandle, follow: bool) -> AsyncGenerator[bytes]:
        """The VM's serial console output: the retained history, then with `follow` new output as it comes
        (without it, until IDLE_END passes with nothing new)."""
        console = await backend.console(handle, ConsoleType.SERIAL)
        try:
            while True:
                if follow:
                    data = await console.read()
                else:
                    try:
                        data = await asyncio.wait_for(console.read(), IDLE_END)
                    except TimeoutError:
                        return
                if not data:
                    return
                yield data
        finally:
            await console.close()

    @stream
    async def ConsoleSession(self, request_iterator: AsyncIterator[Any], context: Ctx) -> AsyncIterator[Any]:
        """Interactive console: input from the request stream, output (history first) to the response."""
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        kind = enum_from_proto(ConsoleType, first.console_type, types_pb2.ConsoleType.DESCRIPTOR)
        backend, handle = self.vms.lookup(validation.vm_id(first.vm_id))
        console = await backend.console(handle, kind or ConsoleType.SERIAL)
        yield vm_pb2.ConsoleData()  # empty: the session is open (agent.proto says why)

        async def pump_input() -> None:
            if first.data:
                await console.write(first.data)
            async for message in request_iterator:
                if message.data:
                    await console.write(message.data)

        typing = asyncio.create_task(pump_input())
        try:
            while data := await console.read():
                if typing.done() and (failed := typing.exception()) is not None:
                    raise failed
                yield vm_pb2.ConsoleData(data=data)
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError, PlasmaError):
                await typing
            await console.close()

    @unary
    async def AttachDisk(self, request: agent_pb2.AttachDiskRequest, context: Ctx) -> Any:
        vm_id = validation.vm_id(request.vm_id)
        image = _image(from_proto(Image, request.image), "image") if request.HasField("image") else None
        disk = validation.attached_disk(from_proto(DiskSpec, request.disk))
        await self.vms.attach_disk(vm_id, validation.name(request.org_id, "org_id"), disk, image)
        return types_pb2.Empty()

    @unary
    async def ResizeVm(self, request: agent_pb2.ResizeVmRequest, context: Ctx) -> Any:
        vm_id = validation.vm_id(request.vm_id)
        change = validation.vm_resize_of(request.vcpus, request.memory_mib,
                                         ((d.disk_id, d.size_gib) for d in request.disk_sizes))
        await self.vms.resize(vm_id, change)
        return types_pb2.Empty()

    @unary
    async def DetachDisk(self, request: agent_pb2.DetachDeviceRequest, context: Ctx) -> Any:
        await self.vms.detach_disk(*_device(request.vm_id, request.device_id, "device_id"))
        return types_pb2.Empty()

    @unary
    async def AttachNic(self, request: agent_pb2.AttachNicRequest, context: Ctx) -> Any:
        nic = validation.nic(from_proto(NetworkSpec, request.nic), "nic")
        port = from_proto(PortRequest, request.port) if request.HasField("port") else None
        await self.vms.attach_nic(validation.vm_id(request.vm_id), nic, port)
        return types_pb2.Empty()

    @unary
    async def UpdatePortSecurity(self, request: agent_pb2.UpdatePortSecurityRequest, context: Ctx) -> Any:
        groups = [from_proto(SecurityGroup, g) for g in request.security_groups]
        await self.vms.ports.update_security(request.port_id, groups)
        return types_pb2.Empty()

    @unary
    async def UpdateNetworkPeers(self, request: agent_pb2.UpdateNetworkPeersRequest, context: Ctx) -> Any:
        await self.vms.ports.update_overlay(validation_reports.network_peers(from_proto(NetworkPeers, request)))
        return types_pb2.Empty()

    @unary
    async def DetachNic(self, request: agent_pb2.DetachDeviceRequest, context: Ctx) -> Any:
        await self.vms.detach_nic(*_device(request.vm_id, request.device_id, "device_id"))
        return types_pb2.Empty()

    @unary
    async def SnapshotVm(self, request: agent_pb2.SnapshotRequest, context: Ctx) -> Any:
        snap = await self.vms.snapshot(*_device(request.vm_id, request.snapshot_id, "snapshot_id"))
        return to_proto(snap, vm_pb2.VmSnapshot())

    @unary
    async def RestoreVm(self, request: agent_pb2.SnapshotRequest, context: Ctx) -> Any:
        await self.vms.restore(*_device(request.vm_id, request.snapshot_id, "snapshot_id"))
        return types_pb2.Empty()

    @unary
    async def ListSnapshots(self, request: agent_pb2.VmOperationRequest, context: Ctx) -> Any:
        snaps = await self.vms.snapshots(validation.vm_id(request.vm_id))
        return vm_pb2.ListSnapshotsResponse(snapshots=[to_proto(s, vm_pb2.VmSnapshot()) for s in snaps])

    @unary
    async def DeleteSnapshot(self, request: agent_pb2.SnapshotRequest, context: Ctx) -> Any:
        await self.vms.delete_snapshot(*_device(request.vm_id, request.snapshot_id, "snapshot_id"))
        return types_pb2.Empty()

    @stream
    async def ExportDisk(self, request: agent_pb2.ExportDiskRequest, context: Ctx) -> AsyncIterator[Any]:
        vm_id, disk_id = _device(request.vm_id, request.disk_id, "disk_id")
        offset = 0
        async with contextlib.aclosing(self.vms.export_disk(vm_id, disk_id)) as parts:
            async for fmt, size, chunk in parts:
                yield agent_pb2.ExportDiskChunk(chunk=chunk, offset=offset, total_size=size, format=fmt)
                offset += len(chunk)


answer_unserved(AgentServicer, agent_pb2.DESCRIPTOR.services_by_name["AgentService"], ON_CONTROL_PLANE)
