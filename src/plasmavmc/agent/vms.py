"""The agent's VMs: the handle table, backend calls, and supervision of running hypervisor processes.

Handles are rebuilt from the backends' runtime dirs at start (`adopt`), so an agent restart loses no VM
and kills none: every VM whose process still runs is supervised again; one whose process died while
the agent was down is reported (a VM whose provisional create was never confirmed,
`hypervisor/provisional.py`, is removed instead: the control plane never took it). A supervised
process that exits is reported to the control plane at once (ReportStatus), with the backend's reason;
exits an operation asked for are reported as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path

from plasmavmc.agent.boot_watch import BootWatch
from plasmavmc.agent.image_cache import ImageCache
from plasmavmc.agent.ports import NodePorts
from plasmavmc.agent.reporter import Reporter, vm_report
from plasmavmc.errors import PlasmaError, Unimplemented, VmNotFound
from plasmavmc.hypervisor.base import ConsoleStream, ExitReport, HypervisorBackend, LocalImage, VmHandle
from plasmavmc.hypervisor.provisional import Commitment, is_provisional
from plasmavmc.hypervisor.registry import HypervisorRegistry
from plasmavmc.observe.steps import Steps
from plasmavmc.types.image import Image
from plasmavmc.types.network import PortRequest
from plasmavmc.types.runtime import ExitKind, SnapshotInfo
from plasmavmc.types.states import VmState
from plasmavmc.types.vm import DiskSpec, NetworkSpec, VirtualMachine, VmResize, VmStatus
from plasmavmc.v1 import agent_pb2

log = logging.getLogger(__name__)
CREATE_STARTED_STEPS = "create+start steps"  # its log line, one per VM (`Steps`; the bench reads it)
REPORT_RETRY_MAX = 5.0
EXIT_CLASSIFY_S = 2.0  # how long a status read waits for the supervisor's reason of an exit it sees
EXPORT_CHUNK = 1024 * 1024


class NodeVms:
    def __init__(self, node_id: str, registry: HypervisorRegistry, cache: ImageCache, reporter: Reporter,
                 ports: NodePorts | None = None) -> None:
        self.node_id = node_id
        self.ports = ports or NodePorts(None)
        self.registry = registry
        self.cache = cache
        self.reporter = reporter
        self.handles: dict[str, VmHandle] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        # why each VM's last run ended unasked: heartbeats carry it too, so the reason reaches the
        # control plane even when a heartbeat wins the race with the exit report
        self._exits: dict[str, ExitReport] = {}
        # each supervised VM's `wait_exit` (its classification of the exit, once the process is gone):
        # a status read that finds the process gone first waits for it (`_classified`)
        self._exit_waits: dict[str, asyncio.Future[ExitReport]] = {}
        self._rebooting: set[str] = set()  # VMs in a reboot or reset (the process may be replaced)
        self.boots = BootWatch(self._report_ready)

    def lookup(self, vm_id: str) -> tuple[HypervisorBackend, VmHandle]:
        handle = self.handles.get(vm_id)
        if handle is None:
            raise VmNotFound(f"VM {vm_id} is not on node {self.node_id}", field="vm_id")
        return self.registry.get(handle.backend), handle

    async def adopt(self) -> None:
        for backend in self.registry.all():
            for handle in await backend.handles():
                if is_provisional(handle.details):  # its claim's commit was never confirmed here
                    log.info("removing VM %s: its provisional create was never confirmed", handle.vm_id)
                    await self.delete(handle.vm_id)  # not adopted: removed as a create cut short is
                    continue
                self.handles[handle.vm_id] = handle
                status = await backend.status(handle)
                if status.actual_state == VmState.RUNNING:
                    log.info("adopted running VM %s (pid %s)", handle.vm_id, status.host_pid)
                    self._supervise(backend, handle)
                elif status.started_at is not None:
                    report = await backend.wait_exit(handle)
                    if report.kind != ExitKind.REQUESTED:
                        # found gone at start: the host rebooted (or it died while no agent watched)
                        kind = ExitKind.HOST_REBOOT if report.kind == ExitKind.CRASHED else report.kind
                        why = ExitReport(kind, f"{report.reason} (while the agent was down)")
                        self._exits[handle.vm_id] = why
                        task = asyncio.create_task(self._report_exit(backend, handle, why))
                        self._supervisors[handle.vm_id] = task

    async def _local_image(self, image: Image, org_id: str, by_id: Mapping[str, Image]) -> LocalImage:
        """The image on this node (pinned by the caller)."""
        kernel, initrd = _boot_files(image, by_id)
        return LocalImage(
            image_id=image.id,
            disk_path=await self.cache.fetch(image, org_id),
            disk_format=image.format.value,
            kernel_path=await self.cache.fetch(kernel, org_id) if kernel else None,
            initrd_path=await self.cache.fetch(initrd, org_id) if initrd else None,
            kernel_cmdline=image.metadata.get("kernel_cmdline", ""),
        )

    async def _local_images(self, vm: VirtualMachine, images: list[Image]) -> dict[str, LocalImage]:
        """The images of the VM's disks on this node, each with its kernel and initrd, all pinned for the
        VM (its disks sit on them) in one write before they are fetched, until the VM is deleted."""
        by_id = {i.id: i for i in images}
        used = [by_id[disk.source.image_id or ""] for disk in vm.spec.disks]
        self.cache.pin(vm.id, [f for image in used for f in (image, *_boot_files(image, by_id)) if f is not None])
        out: dict[str, LocalImage] = {}
        for image in used:
            out[image.id] = await self._local_image(image, vm.org_id, by_id)
        return out

    async def _prepared(self, backend: HypervisorBackend, vm: VirtualMachine, images: list[Image],
                        ports: Sequence[PortRequest]) -> Mapping[str, LocalImage]:
        """What a create needs on this node: the spec checked, the images local, the ports plumbed."""
        backend.supports(vm.spec)
        local: Mapping[str, LocalImage] = await self._local_images(vm, images)
        await self.ports.plumb(ports)  # taps exist, on their bridges, before the hypervisor opens them
        return local

    async def create(self, vm: VirtualMachine, images: list[Image], ports: Sequence[PortRequest] = ()) -> VmHandle:
        backend = self.registry.get(vm.hypervisor)
        handle = await backend.create(vm, await self._prepared(backend, vm, images, ports))
        self.handles[vm.id] = handle
        return handle

    async def create_started(self, vm: VirtualMachine, images: list[Image], ports: Sequence[PortRequest] = (),
                             ready: Callable[[VmHandle], None] | None = None, *,
                             output_sent: asyncio.Event | None = None,
                             commitment: Commitment | None = None) -> tuple[VmHandle, VmStatus]:
        """`create` then `start` in one call (CreateVm with `start`): the control plane's create+start is one
        round trip, the backend may overlap the two (`create_started`), and the status the control plane
        records RUNNING from comes without the cost of usage counters. The boot timeline's image_ready is
        when the backend had made the disks. `ready` and `output_sent` are the backend's
        (`HypervisorBackend.create_started`): `ready` called with the handle once the VM's console can be
        followed, `output_sent` set once its first output went on. A provisional create (`commitment`:
        `hypervisor/provisional.py`) that fails before its word came (abandoned, or its call ended) leaves
        nothing: the VM is deleted as a create cut short is. Logs where it spent its time
        (`CREATE_STARTED_STEPS`)."""
        took = Steps()
        backend = self.registry.get(vm.hypervisor)
        local = await self._prepared(backend, vm, images, ports)
        took.done("prepared")
        try:
            handle, made_at = await backend.create_started(vm, local, ready, output_sent=output_sent,
                                                           commitment=commitment)
        except BaseException:
            if commitment is not None and not commitment.confirmed:
                log.info("vm %s: its provisional create ended before the word of its claim: removed", vm.id)
                await asyncio.shield(self.delete(vm.id))  # not this node's: nothing of it stays
                raise
            # created but not started: the VM is this node's all the same (its record says why in ERROR)
            for handle in await backend.handles():
                if handle.vm_id == vm.id:
                    self.handles[vm.id] = handle
            raise
        self.handles[vm.id] = handle
        took.done("backend")
        self._running(backend, handle, None)  # a new VM: its console has no history to skip
        status = self.boots.merged(vm.id, await backend.status_after_start(handle))
        took.done("status")
        log.info("%s", took.line(f"vm {vm.id}: {CREATE_STARTED_STEPS}"))
        return handle, dataclasses.replace(status, boot=dataclasses.replace(status.boot, image_ready_at=made_at))

    async def start(self, vm_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        console = await self.boots.before_start(backend, handle)
        try:
            await backend.start(handle)
        except BaseException:
            if console is not None:
                await console.close()
            raise
        self._running(backend, handle, console)

    def _running(self, backend: HypervisorBackend, handle: VmHandle, console: ConsoleStream | None) -> None:
        """A start succeeded: its boot is watched and its process supervised."""
        self.boots.started(backend, handle, console)
        self._exits.pop(handle.vm_id, None)
        self._supervise(backend, handle)

    async def stop(self, vm_id: str, timeout: float, force: bool) -> None:
        backend, handle = self.lookup(vm_id)
        await self._unsupervise(vm_id)
        if force:
            await backend.kill(handle)
        else:
            await backend.stop(handle, timeout)

    async def restart(self, vm_id: str, *, hard: bool) -> None:
        """Reboot or (`hard`) reset. Either may replace the hypervisor process (a cold reboot always; a
        reset where the hypervisor cannot reset in place: Firecracker, mvisor): not supervised meanwhile,
        so the old process's end is nobody's exit, and RUNNING in its status throughout."""
        backend, handle = self.lookup(vm_id)
        await self._unsupervise(vm_id)
        self._rebooting.add(vm_id)
        try:
            await (backend.reset if hard else backend.reboot)(handle)
        finally:
            self._rebooting.discard(vm_id)
            if (await backend.status(handle)).actual_state == VmState.RUNNING:
                self._supervise(backend, handle)

    async def kill(self, vm_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        await self._unsupervise(vm_id)
        await backend.kill(handle)

    async def delete(self, vm_id: str) -> None:
        if vm_id not in self.handles:
            for backend in self.registry.all():  # a create cut short may have left a directory
                await backend.purge(vm_id)
            self.cache.unpin(vm_id)
            await self.ports.unplumb_vm(vm_id)
            return  # already gone: delete is idempotent
        backend, handle = self.lookup(vm_id)
        await self._unsupervise(vm_id)
        await backend.delete(handle)
        self.boots.forget(vm_id)
        await self.ports.unplumb_vm(vm_id)
        self.handles.pop(vm_id, None)  # a delete of the same VM beside this one may have been first
        self.cache.unpin(vm_id)  # its disks are gone: the cached bases may be evicted now

    def exit_kind(self, vm_id: str) -> ExitKind | None:
        """Why the VM's last run ended unasked (None: it did not, or it runs again): heartbeats carry it."""
        exited = self._exits.get(vm_id)
        return None if exited is None else exited.kind

    async def status(self, vm_id: str) -> VmStatus:
        backend, handle = self.lookup(vm_id)
        status = await backend.status(handle)
        exited = self._exits.get(vm_id)
        if exited is None and status.actual_state == VmState.STOPPED and vm_id not in self._rebooting:
            exited = await self._classified(vm_id)
        if exited is not None and status.actual_state == VmState.STOPPED and not status.last_error:
            status = dataclasses.replace(status, last_error=exited.reason)
        if vm_id in self._rebooting and status.actual_state != VmState.RUNNING:
            # a reboot or reset between its stop and its start: the VM runs on (RUNNING -> RUNNING), its
            # process is being replaced — a heartbeat now must not report an exit nobody should act on
            status = dataclasses.replace(status, actual_state=VmState.RUNNING)
        return self.boots.merged(vm_id, status)

    async def _classified(self, vm_id: str) -> ExitReport | None:
        """The supervisor's report of an exit a status read found (the process is gone, its supervisor
        still classifying it), waited for at most EXIT_CLASSIFY_S; None when it is not there by then or
        the exit was requested. So a heartbeat that wins the race with the exit report carries the same
        kind and reason (a guest power-off, not a crash) instead of a reasonless STOPPED."""
        waiting = self._exit_waits.get(vm_id)
        if waiting is None:
            return None
        await asyncio.wait({waiting}, timeout=EXIT_CLASSIFY_S)  # the wait is not cancelled by a timeout
        if not waiting.done() or waiting.cancelled() or waiting.exception() is not None:
            return None
        report = waiting.result()
        if report.kind == ExitKind.REQUESTED:
            return None
        self._exits[vm_id] = report  # as its supervisor records it (`exit_kind` reads it)
        return report

    # Devices and snapshots: straight to the backend (it keeps the VM's spec on the node up to date).

    async def attach_disk(self, vm_id: str, org_id: str, disk: DiskSpec, image: Image | None) -> None:
        backend, handle = self.lookup(vm_id)
        local = None
        if image is not None:  # pinned for the VM (its disk sits on it) until the VM is deleted
            self.cache.pin(vm_id, [image])
            local = await self._local_image(image, org_id, {image.id: image})
        await backend.attach_disk(handle, disk, local)

    async def resize(self, vm_id: str, change: VmResize) -> None:
        backend, handle = self.lookup(vm_id)
        await backend.resize(handle, change)

    async def detach_disk(self, vm_id: str, disk_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        await backend.detach_disk(handle, disk_id)

    async def attach_nic(self, vm_id: str, nic: NetworkSpec, port: PortRequest | None = None) -> None:
        backend, handle = self.lookup(vm_id)
        if port is not None:
            await self.ports.plumb([port])
        await backend.attach_nic(handle, nic)

    async def detach_nic(self, vm_id: str, nic_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        await backend.detach_nic(handle, nic_id)
        await self.ports.unplumb_nic(vm_id, nic_id)

    async def snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        backend, handle = self.lookup(vm_id)
        await backend.snapshot(handle, snapshot_id)
        return next(s for s in await backend.list_snapshots(handle) if s.id == snapshot_id)

    async def restore(self, vm_id: str, snapshot_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        await backend.restore(handle, snapshot_id)

    async def snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        backend, handle = self.lookup(vm_id)
        return await backend.list_snapshots(handle)

    async def delete_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        backend, handle = self.lookup(vm_id)
        await backend.delete_snapshot(handle, snapshot_id)

    async def export_disk(self, vm_id: str, disk_id: str) -> AsyncGenerator[tuple[str, int, bytes]]:
        """Disk `disk_id` of a stopped VM as a standalone image: (format, total size, chunk) in order.
        The backend writes it to a temp file in the VM's runtime dir, which is removed however the
        stream ends (finished, failed, or abandoned by the caller)."""
        backend, handle = self.lookup(vm_id)
        if not backend.capabilities().disk_export:
            raise Unimplemented(f"{backend.backend_type().value}: disk export is not supported by this backend")
        tmp = Path(handle.runtime_dir) / f".export-{uuid.uuid4().hex}.partial"
        try:
            fmt = await backend.export_disk(handle, disk_id, tmp)
            with tmp.open("rb") as source:
                size = tmp.stat().st_size
                while chunk := await asyncio.to_thread(source.read, EXPORT_CHUNK):
                    yield fmt, size, chunk
        finally:
            await asyncio.to_thread(tmp.unlink, True)

    def _supervise(self, backend: HypervisorBackend, handle: VmHandle) -> None:
        task = asyncio.create_task(self._watch(backend, handle), name=f"supervise-{handle.vm_id}")
        self._supervisors[handle.vm_id] = task

    async def _unsupervise(self, vm_id: str) -> None:
        task = self._supervisors.pop(vm_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, backend: HypervisorBackend, handle: VmHandle) -> None:
        waiting = asyncio.ensure_future(backend.wait_exit(handle))
        self._exit_waits[handle.vm_id] = waiting
        try:
            report = await waiting
        finally:
            if self._exit_waits.get(handle.vm_id) is waiting:
                del self._exit_waits[handle.vm_id]
        self._supervisors.pop(handle.vm_id, None)
        log.info("VM %s hypervisor exited: %s (%s)", handle.vm_id, report.kind.value, report.reason)
        if report.kind != ExitKind.REQUESTED:
            self._exits[handle.vm_id] = report
        await self._report_exit(backend, handle, report)

    async def _report_exit(self, backend: HypervisorBackend, handle: VmHandle, report: ExitReport) -> None:
        status = await backend.status(handle)
        if report.kind != ExitKind.REQUESTED:
            status = VmStatus(**{**status.__dict__, "last_error": report.reason})
        await self._deliver(vm_report(handle.vm_id, status, report.kind))

    async def _report_ready(self, vm_id: str) -> None:
        """The guest printed its readiness line: tell the control plane now, not at the next heartbeat."""
        await self._deliver(vm_report(vm_id, await self.status(vm_id)))

    async def _deliver(self, report: agent_pb2.VmReport) -> None:
        delay = 0.2
        while True:
            try:
                await self.reporter.report(self.node_id, report)
                return
            except PlasmaError as err:
                log.warning("report on VM %s not delivered (%s); retrying", report.vm_id, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPORT_RETRY_MAX)

    async def close(self) -> None:
        """Stop supervising (the VMs keep running: they outlive the agent)."""
        for vm_id in list(self._supervisors):
            await self._unsupervise(vm_id)
        await self.boots.close()


def _boot_files(image: Image, by_id: Mapping[str, Image]) -> tuple[Image | None, Image | None]:
    """The kernel and initrd images `image` names (metadata `kernel_id`, `ramdisk_id`), when given."""
    return by_id.get(image.metadata.get("kernel_id", "")), by_id.get(image.metadata.get("ramdisk_id", ""))
