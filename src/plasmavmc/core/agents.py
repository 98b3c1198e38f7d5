"""Calls from the control plane to node agents (`plasmavmc.agent.v1.AgentService`).

One gRPC channel per agent address, reused; every failure comes back as our error tree (the agent's own
`PlasmaError` survives the wire through `wire/status.py`; an unreachable agent is `Unavailable`).
A channel that failed to connect (the agent was down) fails calls at once until its reconnect backoff
ends; a call on such a channel first gives it up to `RECONNECT_WAIT` to connect, so the first call after
an agent came back (its heartbeat already made the VM RUNNING) does not fail for a stale backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from plasmavmc.core.armed import ArmedRunVm
from plasmavmc.errors import PlasmaError, Unavailable
from plasmavmc.grpc_tls import agent_channel
from plasmavmc.types.image import Image
from plasmavmc.types.network import NetworkPeers, PortRequest, SecurityGroup
from plasmavmc.types.node import Node
from plasmavmc.types.runtime import SnapshotInfo
from plasmavmc.types.vm import ConsoleType, DiskSpec, NetworkSpec, VirtualMachine, VmResize, VmStatus
from plasmavmc.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from plasmavmc.wire.channels import RECONNECT_OPTIONS
from plasmavmc.wire.convert import from_proto, to_proto
from plasmavmc.wire.status import from_rpc_error

CALL_TIMEOUT = 30.0
CREATE_TIMEOUT = 600.0  # a create fetches the VM's images to the node
CREATE_START_TIMEOUT = 720.0  # ... and a create with `start` boots it too
DEVICE_TIMEOUT = 120.0  # a hot-unplug waits for the guest to let the device go
SNAPSHOT_TIMEOUT = 600.0  # a memory snapshot writes all of the guest's RAM
EXPORT_TIMEOUT = 3600.0  # a disk export flattens and streams a whole disk
SESSION_OPEN_WAIT = 5.0  # seconds keys wait for an agent to say a console session is open
RECONNECT_WAIT = 1.5  # seconds a call waits for a channel in reconnect backoff (its backoff is at most 1 s)
_NOT_YET = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.CONNECTING)


def _translate(exc: grpc.aio.AioRpcError, node: Node) -> PlasmaError:
    err = from_rpc_error(exc)
    if isinstance(err, Unavailable):
        return Unavailable(f"agent of node {node.id} at {node.agent_address} is unreachable: {err.message}")
    return err


def _create_request(vm: VirtualMachine, images: Sequence[Image], ports: Sequence[PortRequest],
                    start: bool) -> agent_pb2.CreateVmRequest:
    req = agent_pb2.CreateVmRequest(vm=to_proto(vm, types_pb2.VirtualMachine()), start=start)
    for image in images:
        to_proto(image, req.images.add())
    for port in ports:
        to_proto(port, req.ports.add())
    return req


async def _send(call: Any, request: agent_pb2.CreateVmRequest, *, last: bool = True) -> None:
    await call.write(request)
    if last:
        await call.done_writing()


class AgentClient:
    """The AgentService of one node."""

    def __init__(
        self, node: Node, stub: agent_pb2_grpc.AgentServiceStub, channel: grpc.aio.Channel | None = None,
        armed: ArmedRunVm | None = None,
    ) -> None:
        """`armed`: the channel's RunVm call opened ahead (`core/armed.py`; None: every RunVm opens its own)."""
        self.node = node
        self._stub = stub
        self._channel = channel
        self.armed = armed

    async def _connected(self) -> None:
        """If the channel is waiting out a reconnect backoff, let it connect (up to `RECONNECT_WAIT`)."""
        if self._channel is None:
            return
        state = self._channel.get_state(try_to_connect=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RECONNECT_WAIT):
                while state in _NOT_YET:
                    await self._channel.wait_for_state_change(state)
                    state = self._channel.get_state(try_to_connect=True)

    async def _call(self, method: str, request: object, timeout: float = CALL_TIMEOUT) -> object:
        await self._connected()
        try:
            return await getattr(self._stub, method)(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.node) from None

    async def create_vm(self, vm: VirtualMachine, images: Sequence[Image], ports: Sequence[PortRequest] = (),
                        *, start: bool = False) -> VmStatus | None:
        """Create the VM on the node; with `start`, start it too in the same call and return its status."""
        req = _create_request(vm, images, ports, start)
        reply: Any = await self._call("CreateVm", req, timeout=CREATE_START_TIMEOUT if start else CREATE_TIMEOUT)
        return from_proto(VmStatus, reply.started) if start else None

    async def run_vm(self, vm: VirtualMachine, images: Sequence[Image], ports: Sequence[PortRequest],
                     early: Callable[[bytes], Awaitable[None]]) -> tuple[VmStatus, AsyncGenerator[bytes]]:
        """Create and start the VM on the node, then follow its serial console, in one call (RunVm): its
        status once running (within the create+start's time limit), and the console's output to come (the
        call ends when that is closed). Output the node sends before the status goes to `early`."""
        await self._connected()
        return await self._replies(await self._run_call(_create_request(vm, images, ports, True)), early)

    async def run_vm_ahead(self, vm: VirtualMachine, images: Sequence[Image]) -> Any:
        """RunVm's create (a VM without NICs) sent ahead of its claim's commit (agent.proto
        `provisional`): the node boots it at once. Returns the call, its request stream still open:
        `run_vm_committed` once the claim committed, else `call.cancel()` (the node removes the VM)."""
        await self._connected()
        request = _create_request(vm, images, (), True)
        request.provisional = True
        return await self._run_call(request, last=False)

    async def run_vm_committed(self, call: Any, early: Callable[[bytes], Awaitable[None]]
                               ) -> tuple[VmStatus, AsyncGenerator[bytes]]:
        """`run_vm` of a create sent ahead (`run_vm_ahead`), once its claim committed: the word sent, then
        as `run_vm`."""
        try:
            await _send(call, agent_pb2.CreateVmRequest(committed=True))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            call.cancel()
            if isinstance(exc, grpc.aio.AioRpcError):
                raise _translate(exc, self.node) from None
            raise Unavailable(f"agent of node {self.node.id}: the RunVm call ended before its claim committed"
                              ) from None
        return await self._replies(call, early)

    async def _replies(self, call: Any, early: Callable[[bytes], Awaitable[None]]
                       ) -> tuple[VmStatus, AsyncGenerator[bytes]]:
        """A RunVm call's status (output before it to `early`) and its console to come."""
        replies = aiter(call)  # one iterator throughout (grpc.aio must not mix it with `read`)
        try:
            async with asyncio.timeout(CREATE_START_TIMEOUT):
                while (first := await anext(replies, None)) is not None and not first.HasField("handle"):
                    await early(first.console)
            if first is None:
                raise PlasmaError(f"agent of node {self.node.id} answered RunVm without the VM's status")
        except BaseException as exc:
            call.cancel()
            if isinstance(exc, grpc.aio.AioRpcError):
                raise _translate(exc, self.node) from None
            raise
        if self.armed is not None:
            self.armed.arm_soon()
        return from_proto(VmStatus, first.handle.started), self._console_of(call, replies)

    async def _run_call(self, request: agent_pb2.CreateVmRequest, *, last: bool = True) -> Any:
        """A RunVm call with `request` written and (`last`) the request stream ended: the armed call when
        there is one, else (or when writing on it fails: it ended unseen) a new call."""
        armed = self.armed.take() if self.armed is not None else None
        if armed is not None:
            try:
                await _send(armed, request, last=last)
                return armed
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                armed.cancel()
        call = self._stub.RunVm()
        try:
            await _send(call, request, last=last)
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise _translate(exc, self.node) from None
        return call

    async def _console_of(self, call: Any, replies: AsyncIterator[Any]) -> AsyncGenerator[bytes]:
        try:
            async for reply in replies:
                yield reply.console
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.node) from None
        finally:
            call.cancel()

    async def start_vm(self, vm_id: str) -> None:
        await self._call("StartVm", agent_pb2.StartVmRequest(vm_id=vm_id), timeout=120.0)

    async def stop_vm(self, vm_id: str, timeout_seconds: int, force: bool) -> None:
        req = agent_pb2.StopVmRequest(vm_id=vm_id, timeout_seconds=timeout_seconds, force=force)
        await self._call("StopVm", req, timeout=timeout_seconds + CALL_TIMEOUT)

    async def delete_vm(self, vm_id: str) -> None:
        await self._call("DeleteVm", agent_pb2.DeleteVmRequest(vm_id=vm_id))

    async def reboot_vm(self, vm_id: str) -> None:
        await self._call("RebootVm", agent_pb2.VmOperationRequest(vm_id=vm_id), timeout=180.0)

    async def reset_vm(self, vm_id: str) -> None:
        await self._call("ResetVm", agent_pb2.VmOperationRequest(vm_id=vm_id))

    async def status(self, vm_id: str) -> VmStatus:
        msg = await self._call("GetVmStatus", agent_pb2.GetVmStatusRequest(vm_id=vm_id))
        return from_proto(VmStatus, msg)  # type: ignore[arg-type]

    async def console(self, vm_id: str, follow: bool) -> AsyncIterator[bytes]:
        call = self._stub.StreamConsole(agent_pb2.StreamConsoleRequest(vm_id=vm_id, follow=follow))
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.node) from None
        finally:
            call.cancel()

    async def export_disk(self, vm_id: str, disk_id: str) -> AsyncIterator[bytes]:
        """Disk `disk_id` of a stopped VM as a standalone image, in chunks (ExportDisk)."""
        request = agent_pb2.ExportDiskRequest(vm_id=vm_id, disk_id=disk_id)
        call = self._stub.ExportDisk(request, timeout=EXPORT_TIMEOUT)
        offset = 0
        try:
            async for part in call:
                if part.offset != offset:
                    raise Unavailable(f"agent of node {self.node.id} sent disk bytes out of order")
                offset += len(part.chunk)
                yield bytes(part.chunk)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.node) from None
        finally:
            call.cancel()

    async def attach_disk(self, vm: VirtualMachine, disk: DiskSpec, image: Image | None) -> None:
        req = agent_pb2.AttachDiskRequest(vm_id=vm.id, org_id=vm.org_id, disk=to_proto(disk, types_pb2.DiskSpec()))
        if image is not None:
            to_proto(image, req.image)
        await self._call("AttachDisk", req, timeout=DEVICE_TIMEOUT)

    async def resize_vm(self, vm_id: str, change: VmResize) -> None:
        req = agent_pb2.ResizeVmRequest(vm_id=vm_id, vcpus=change.vcpus, memory_mib=change.memory_mib)
        for disk_id, size in sorted(change.disk_sizes.items()):
            req.disk_sizes.add(disk_id=disk_id, size_gib=size)
        await self._call("ResizeVm", req, timeout=DEVICE_TIMEOUT)

    async def detach_disk(self, vm_id: str, disk_id: str) -> None:
        req = agent_pb2.DetachDeviceRequest(vm_id=vm_id, device_id=disk_id)
        await self._call("DetachDisk", req, timeout=DEVICE_TIMEOUT)

    async def attach_nic(self, vm_id: str, nic: NetworkSpec, port: PortRequest | None = None) -> None:
        req = agent_pb2.AttachNicRequest(vm_id=vm_id, nic=to_proto(nic, types_pb2.NetworkSpec()))
        if port is not None:
            to_proto(port, req.port)
        await self._call("AttachNic", req, timeout=DEVICE_TIMEOUT)

    async def update_port_security(self, port_id: str, groups: Sequence[SecurityGroup]) -> None:
        req = agent_pb2.UpdatePortSecurityRequest(port_id=port_id)
        for group in groups:
            to_proto(group, req.security_groups.add())
        await self._call("UpdatePortSecurity", req)

    async def update_network_peers(self, view: NetworkPeers) -> None:
        await self._call("UpdateNetworkPeers", to_proto(view, agent_pb2.UpdateNetworkPeersRequest()))

    async def detach_nic(self, vm_id: str, nic_id: str) -> None:
        req = agent_pb2.DetachDeviceRequest(vm_id=vm_id, device_id=nic_id)
        await self._call("DetachNic", req, timeout=DEVICE_TIMEOUT)

    async def snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        req = agent_pb2.SnapshotRequest(vm_id=vm_id, snapshot_id=snapshot_id)
        return from_proto(SnapshotInfo, await self._call("SnapshotVm", req, timeout=SNAPSHOT_TIMEOUT))  # type: ignore[arg-type]

    async def restore(self, vm_id: str, snapshot_id: str) -> None:
        req = agent_pb2.SnapshotRequest(vm_id=vm_id, snapshot_id=snapshot_id)
        await self._call("RestoreVm", req, timeout=SNAPSHOT_TIMEOUT)

    async def snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        msg: Any = await self._call("ListSnapshots", agent_pb2.VmOperationRequest(vm_id=vm_id))
        return [from_proto(SnapshotInfo, s) for s in msg.snapshots]

    async def delete_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        req = agent_pb2.SnapshotRequest(vm_id=vm_id, snapshot_id=snapshot_id)
        await self._call("DeleteSnapshot", req, timeout=SNAPSHOT_TIMEOUT)

    async def console_session(self, vm_id: str, console_type: ConsoleType,
                              keys: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Interactive console: `keys` go to the VM, its output comes back (serial: history first).

        Keys are sent only once the agent has opened the session (its first, empty, message), so that a
        refusal (the VM is not on that node) reaches the caller as the agent's own error: a write in
        flight when the agent answers would turn it into INTERNAL (grpc/grpc#36066). An agent that does not
        say so (an older one) gets the keys after `SESSION_OPEN_WAIT` or its first output."""
        opened = asyncio.Event()

        async def requests() -> AsyncIterator[agent_pb2.ConsoleInput]:
            kind = types_pb2.CONSOLE_TYPE_VNC if console_type is ConsoleType.VNC else types_pb2.CONSOLE_TYPE_SERIAL
            yield agent_pb2.ConsoleInput(vm_id=vm_id, console_type=kind)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(opened.wait(), SESSION_OPEN_WAIT)
            async for data in keys:
                yield agent_pb2.ConsoleInput(data=data)

        call = self._stub.ConsoleSession(requests())
        try:
            async for chunk in call:
                opened.set()
                if chunk.data:
                    yield chunk.data
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.node) from None
        finally:
            call.cancel()


class AgentPool:
    """Channels (and their stubs) to every agent the control plane talks to, keyed by node and address.

    With `credentials` (`[agents.tls]`) each channel is mutual TLS and accepts only the certificate of
    the node it was opened for (`grpc_tls.agent_channel`)."""

    def __init__(self, credentials: grpc.ChannelCredentials | None = None) -> None:
        self._credentials = credentials
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, str], agent_pb2_grpc.AgentServiceStub] = {}
        self._armed: dict[tuple[str, str], ArmedRunVm] = {}

    def client(self, node: Node) -> AgentClient:
        if not node.agent_address:
            raise Unavailable(f"node {node.id} has not reported an agent address")
        key = (node.id, node.agent_address)
        stub = self._stubs.get(key)
        if stub is None:
            channel = agent_channel(node.agent_address, node.id, self._credentials, RECONNECT_OPTIONS)
            self._channels[key] = channel
            stub = self._stubs[key] = agent_pb2_grpc.AgentServiceStub(channel)
            self._armed[key] = ArmedRunVm(stub)
        return AgentClient(node, stub, self._channels[key], self._armed[key])

    async def close(self) -> None:
        for armed in self._armed.values():
            armed.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
        self._armed.clear()
