"""VmService methods of `PlasmaClient`: requests in, domain dataclasses out.

Every VM is addressed by (org_id, project_id, vm) where `vm` is either the VM's id or its name within
the project — the server resolves both, so the client passes it through as `VmRef.vm_id` untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import replace

from plasmavmc.client.base import ClientBase
from plasmavmc.errors import InvalidState, VmNotFound
from plasmavmc.types.events import VmEvent, VmEventType
from plasmavmc.types.runtime import SnapshotInfo
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSpec, HypervisorType, NetworkSpec, RestartPolicy, VirtualMachine, VmResize, VmSpec
from plasmavmc.v1 import types_pb2, vm_pb2
from plasmavmc.wire.convert import enum_to_proto, from_proto, to_proto

#: states a VM never leaves on its own: waiting for anything else from here is pointless
_TERMINAL = frozenset({VmState.FAILED, VmState.DELETED})


def _ref(org_id: str, project_id: str, vm: str) -> vm_pb2.VmRef:
    return vm_pb2.VmRef(org_id=org_id, project_id=project_id, vm_id=vm)


def _vm(msg: types_pb2.VirtualMachine) -> VirtualMachine:
    return from_proto(VirtualMachine, msg)


class VmMixin(ClientBase):
    """`plasmavmc.v1.VmService`."""

    async def create_vm(
        self,
        name: str,
        org_id: str,
        project_id: str,
        spec: VmSpec,
        hypervisor: HypervisorType = HypervisorType.KVM,
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        *,
        start: bool = False,
    ) -> VirtualMachine:
        """Create a VM (scheduled and provisioned; with `start`, started too: RUNNING on return)."""
        request = _create_request(name, org_id, project_id, spec, hypervisor, labels, metadata, start)
        return _vm(await self._unary(self._vm_stub.CreateVm, request))

    async def run_vm(
        self,
        name: str,
        org_id: str,
        project_id: str,
        spec: VmSpec,
        hypervisor: HypervisorType = HypervisorType.KVM,
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> AsyncGenerator[VirtualMachine | bytes]:
        """Create and start a VM, then follow its serial console, in one call (RunVm, a spec extension):
        the VM first (RUNNING), then the console's output as it comes; closing the iterator ends the
        console stream (the VM runs on)."""
        request = _create_request(name, org_id, project_id, spec, hypervisor, labels, metadata, True)
        async for message in self._stream(self._vm_stub.RunVm, request):
            if message.HasField("vm"):  # the first message: the VM, with the output that came before it
                yield _vm(message.vm)
            if message.console:
                yield bytes(message.console)

    async def clone_vm(self, name: str, org_id: str, project_id: str, source_vm: str, snapshot_id: str, *,
                       start: bool = True, labels: dict[str, str] | None = None) -> VirtualMachine:
        """Create a Firecracker VM from snapshot `snapshot_id` of `source_vm` (id or name, same project):
        a spec extension; with `start` (default) it runs on return, resumed where the snapshot was."""
        request = vm_pb2.CreateVmRequest(
            name=name, org_id=org_id, project_id=project_id, labels=labels or {}, start=start,
            source_snapshot=types_pb2.CloneSource(vm_id=source_vm, snapshot_id=snapshot_id),
        )
        return _vm(await self._unary(self._vm_stub.CreateVm, request))

    async def get_vm(self, org_id: str, project_id: str, vm: str) -> VirtualMachine:
        """One VM by id or name."""
        request = vm_pb2.GetVmRequest(vm=_ref(org_id, project_id, vm))
        return _vm(await self._unary(self._vm_stub.GetVm, request))

    async def list_vms(
        self, org_id: str, project_id: str, page_size: int = 0, page_token: str = "", all_projects: bool = False,
        *, states: Collection[VmState] = (), node_ids: Collection[str] = (), labels: dict[str, str] | None = None,
    ) -> tuple[list[VirtualMachine], str]:
        """One page of the project's VMs (`all_projects`: the org's; project_id "") and the next page's token.
        Filters are server-side: a VM in one of `states`, on one of `node_ids`, with every label of
        `labels`; a filtered page may be short (even empty) with a next token."""
        request = vm_pb2.ListVmsRequest(
            org_id=org_id, project_id=project_id, page_size=page_size, page_token=page_token,
            all_projects=all_projects, node_ids=list(node_ids), labels=labels or {},
            states=[f"VM_STATE_{s.name}" for s in states],
        )
        response = await self._unary(self._vm_stub.ListVms, request)
        return [_vm(m) for m in response.vms], str(response.next_page_token)

    async def list_all_vms(
        self, org_id: str, project_id: str, all_projects: bool = False,
        *, states: Collection[VmState] = (), node_ids: Collection[str] = (), labels: dict[str, str] | None = None,
    ) -> list[VirtualMachine]:
        """Every VM of the project (or of every project of the org) matching the filters, following the
        page tokens."""
        result: list[VirtualMachine] = []
        token = ""
        while True:
            page, token = await self.list_vms(
                org_id, project_id, page_token=token, all_projects=all_projects,
                states=states, node_ids=node_ids, labels=labels,
            )
            result.extend(page)
            if not token:
                return result

    async def update_vm(
        self,
        org_id: str,
        project_id: str,
        vm: str,
        labels: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        *,
        resize: VmResize | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> VirtualMachine:
        """Replace the labels and/or metadata (`None` leaves that map as it is, `{}` clears it), resize a
        stopped VM (vCPUs, memory, larger disks), set the restart policy (`None`: unchanged)."""
        change = resize or VmResize()
        request = vm_pb2.UpdateVmRequest(
            vm=_ref(org_id, project_id, vm),
            labels=labels or {},
            update_labels=labels is not None,
            metadata=metadata or {},
            update_metadata=metadata is not None,
            vcpus=change.vcpus,
            memory_mib=change.memory_mib,
            disk_sizes=[vm_pb2.DiskSize(disk_id=d, size_gib=s) for d, s in sorted(change.disk_sizes.items())],
        )
        if restart_policy is not None:
            request.restart_policy = enum_to_proto(restart_policy, types_pb2.RestartPolicy.DESCRIPTOR)  # type: ignore[assignment]
        return _vm(await self._unary(self._vm_stub.UpdateVm, request))

    async def delete_vm(self, org_id: str, project_id: str, vm: str, force: bool = False) -> None:
        """Delete a VM; `force` kills a running one instead of failing with INVALID_STATE."""
        request = vm_pb2.DeleteVmRequest(vm=_ref(org_id, project_id, vm), force=force)
        await self._unary(self._vm_stub.DeleteVm, request)

    async def start_vm(self, org_id: str, project_id: str, vm: str) -> VirtualMachine:
        """Start a stopped VM."""
        request = vm_pb2.StartVmRequest(vm=_ref(org_id, project_id, vm))
        return _vm(await self._unary(self._vm_stub.StartVm, request))

    async def stop_vm(
        self, org_id: str, project_id: str, vm: str, force: bool = False, timeout_seconds: int = 0
    ) -> VirtualMachine:
        """ACPI power-off (killed after `timeout_seconds`, 0: the server's 30 s); `force` kills at once."""
        request = vm_pb2.StopVmRequest(
            vm=_ref(org_id, project_id, vm), force=force, timeout_seconds=timeout_seconds
        )
        return _vm(await self._unary(self._vm_stub.StopVm, request))

    async def reboot_vm(self, org_id: str, project_id: str, vm: str) -> VirtualMachine:
        """Graceful reboot of a running VM."""
        request = vm_pb2.RebootVmRequest(vm=_ref(org_id, project_id, vm))
        return _vm(await self._unary(self._vm_stub.RebootVm, request))

    async def reset_vm(self, org_id: str, project_id: str, vm: str) -> VirtualMachine:
        """Hard reset of a running VM."""
        request = vm_pb2.ResetVmRequest(vm=_ref(org_id, project_id, vm))
        return _vm(await self._unary(self._vm_stub.ResetVm, request))

    async def attach_disk(self, org_id: str, project_id: str, vm: str, disk: DiskSpec) -> VirtualMachine:
        """Attach a disk."""
        request = vm_pb2.AttachDiskRequest(
            vm=_ref(org_id, project_id, vm), disk=to_proto(disk, types_pb2.DiskSpec())
        )
        return _vm(await self._unary(self._vm_stub.AttachDisk, request))

    async def detach_disk(self, org_id: str, project_id: str, vm: str, disk_id: str) -> VirtualMachine:
        """Detach the disk `disk_id`."""
        request = vm_pb2.DetachDiskRequest(vm=_ref(org_id, project_id, vm), disk_id=disk_id)
        return _vm(await self._unary(self._vm_stub.DetachDisk, request))

    async def attach_nic(self, org_id: str, project_id: str, vm: str, nic: NetworkSpec) -> VirtualMachine:
        """Attach a network interface."""
        request = vm_pb2.AttachNicRequest(
            vm=_ref(org_id, project_id, vm), nic=to_proto(nic, types_pb2.NetworkSpec())
        )
        return _vm(await self._unary(self._vm_stub.AttachNic, request))

    async def detach_nic(self, org_id: str, project_id: str, vm: str, nic_id: str) -> VirtualMachine:
        """Detach the network interface `nic_id`."""
        request = vm_pb2.DetachNicRequest(vm=_ref(org_id, project_id, vm), nic_id=nic_id)
        return _vm(await self._unary(self._vm_stub.DetachNic, request))

    async def snapshot_vm(self, org_id: str, project_id: str, vm: str, snapshot_id: str) -> SnapshotInfo:
        """Snapshot the VM's disks (and memory, when it runs) as `snapshot_id`."""
        request = vm_pb2.SnapshotVmRequest(vm=_ref(org_id, project_id, vm), snapshot_id=snapshot_id)
        return from_proto(SnapshotInfo, await self._unary(self._vm_stub.SnapshotVm, request))

    async def restore_vm(self, org_id: str, project_id: str, vm: str, snapshot_id: str) -> VirtualMachine:
        """Bring the VM back to `snapshot_id`: what it wrote or did since is gone."""
        request = vm_pb2.RestoreVmRequest(vm=_ref(org_id, project_id, vm), snapshot_id=snapshot_id)
        return _vm(await self._unary(self._vm_stub.RestoreVm, request))

    async def list_snapshots(self, org_id: str, project_id: str, vm: str) -> list[SnapshotInfo]:
        request = vm_pb2.ListSnapshotsRequest(vm=_ref(org_id, project_id, vm))
        reply = await self._unary(self._vm_stub.ListSnapshots, request)
        return [from_proto(SnapshotInfo, s) for s in reply.snapshots]

    async def delete_snapshot(self, org_id: str, project_id: str, vm: str, snapshot_id: str) -> None:
        request = vm_pb2.DeleteSnapshotRequest(vm=_ref(org_id, project_id, vm), snapshot_id=snapshot_id)
        await self._unary(self._vm_stub.DeleteSnapshot, request)

    async def console(
        self, org_id: str, project_id: str, vm: str, follow: bool = True
    ) -> AsyncIterator[bytes]:
        """The serial console's output: the retained history, then (with `follow`) new output as it comes."""
        request = vm_pb2.GetConsoleRequest(
            vm=_ref(org_id, project_id, vm), console_type=types_pb2.CONSOLE_TYPE_SERIAL, follow=follow
        )
        async for message in self._stream(self._vm_stub.GetConsole, request):
            yield bytes(message.data)

    async def watch_vm(
        self, org_id: str, project_id: str, vm: str, send_initial: bool = True, *,
        start_revision: int = 0, history_only: bool = False,
    ) -> AsyncIterator[VmEvent]:
        """The VM's events (vm "" : every VM of the project) as they are stored; with `send_initial` the
        first event is the current record; `start_revision` replays the kept events from there on."""
        request = vm_pb2.WatchVmRequest(vm=vm_pb2.VmRef(org_id=org_id, project_id=project_id, vm_id=vm),
                                        send_initial=send_initial, start_revision=start_revision,
                                        history_only=history_only)
        async for message in self._stream(self._vm_stub.WatchVm, request):
            yield from_proto(VmEvent, message)

    async def vm_events(
        self, org_id: str, project_id: str, vm: str, *, after: VmEvent | None = None,
        seen: Collection[str] = (), follow: bool = False,
    ) -> AsyncIterator[VmEvent]:
        """The kept events (and with `follow` the new ones); resume after the last event received with
        `after` = it and `seen` = the ids received at its revision: nothing lost, nothing repeated."""
        start = after.revision if after is not None else 1
        async for event in self.watch_vm(org_id, project_id, vm, False, start_revision=start,
                                         history_only=not follow):
            if after is not None and event.revision == after.revision and event.id in {after.id, *seen}:
                continue
            yield event

    async def wait_for_state(
        self, org_id: str, project_id: str, vm: str, states: Collection[VmState], timeout: float
    ) -> VirtualMachine:
        """Wait until the VM is in one of `states` and return it.

        Raises `TimeoutError` (naming the last state seen) after `timeout` seconds, `InvalidState` if the
        VM reaches FAILED and `VmNotFound` if it is deleted while neither is awaited.
        """
        wanted = frozenset(states)
        seen: list[VmState | None] = [None]
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    found = await self._wait_once(org_id, project_id, vm, wanted, seen)
                    if found is not None:
                        return found
                    # the server ended the watch (restart, compaction): watch again from the current record
                    await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            last = seen[0].value.upper() if seen[0] else "unknown"
            want = ", ".join(sorted(s.value.upper() for s in wanted))
            raise TimeoutError(
                f"vm {vm}: still {last} after {timeout:g}s waiting for {want}"
            ) from None

    async def _wait_once(
        self,
        org_id: str,
        project_id: str,
        vm: str,
        wanted: frozenset[VmState],
        seen: list[VmState | None],
    ) -> VirtualMachine | None:
        last: VirtualMachine | None = None
        async for event in self.watch_vm(org_id, project_id, vm, send_initial=True):
            seen[0] = event.state
            last = event.vm or last
            deleted = event.type is VmEventType.DELETED or event.state is VmState.DELETED
            if deleted and VmState.DELETED in wanted and last is not None:
                return replace(last, state=VmState.DELETED)
            if event.state in wanted and not deleted:
                return event.vm or await self.get_vm(org_id, project_id, vm)
            if deleted:
                raise VmNotFound(f"vm {vm} was deleted while waiting for it", field="vm")
            if event.state in _TERMINAL:
                detail = event.message or (last.status.last_error if last else None) or "no error recorded"
                raise InvalidState(f"vm {vm} is {event.state.value.upper()}: {detail}")
        return None


def _create_request(name: str, org_id: str, project_id: str, spec: VmSpec, hypervisor: HypervisorType,
                    labels: dict[str, str] | None, metadata: dict[str, str] | None,
                    start: bool) -> vm_pb2.CreateVmRequest:
    """CreateVm's request (RunVm's too)."""
    return vm_pb2.CreateVmRequest(
        name=name, org_id=org_id, project_id=project_id, spec=to_proto(spec, types_pb2.VmSpec()),
        hypervisor=types_pb2.HypervisorType.Name(enum_to_proto(hypervisor, types_pb2.HypervisorType.DESCRIPTOR)),
        labels=labels or {}, metadata=metadata or {}, start=start,
    )
