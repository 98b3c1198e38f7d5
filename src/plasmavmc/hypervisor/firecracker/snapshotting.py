"""`FcSnapshots`: the Firecracker backend's pause, resume and snapshots (take, list, delete, restore),
over a VM's runtime dir (`snapshots.py` holds the files and API calls, `diffs.py` the Diff chains).

A mixin of `FirecrackerBackend` (`backend.py`), which sets what it reads: `launcher` (a restore starts a
fresh process) and `diff_snapshots` (dirty-page tracking: later snapshots of a run are Diffs).
"""

from __future__ import annotations

from plasmavmc.errors import HypervisorError, InvalidState
from plasmavmc.hypervisor.base import VmHandle
from plasmavmc.hypervisor.firecracker import diffs, launcher, snapshots
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.vmdir import VmDirBackend
from plasmavmc.types.runtime import SnapshotInfo


class FcSnapshots(VmDirBackend[FcPaths]):
    launcher: launcher.Launcher
    diff_snapshots: bool

    async def _api_of_running(self, paths: FcPaths, what: str) -> FirecrackerApi:
        if self._running_pid(paths) is None:
            raise InvalidState(f"cannot {what} VM {paths.root.name}: it is not running")
        return FirecrackerApi(paths.api_sock)

    async def pause(self, handle: VmHandle) -> None:
        async with self._lock(handle.vm_id):
            await snapshots.pause(await self._api_of_running(self._paths(handle), "pause"))

    async def resume(self, handle: VmHandle) -> None:
        async with self._lock(handle.vm_id):
            await snapshots.resume(await self._api_of_running(self._paths(handle), "resume"))

    async def snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        """Running: memory, device state and disks, taken while paused; the VM runs on afterwards.
        Stopped: the disks only."""
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            vm, _ = self._load_vm(paths)
            disk_ids = [d.id for d in vm.spec.disks]
            pid = self._running_pid(paths)
            if pid is None:
                await snapshots.create(None, paths, snapshot_id, disk_ids)
                return
            parent = diffs.parent_of_run(paths, pid) if self.diff_snapshots else None
            await snapshots.create(FirecrackerApi(paths.api_sock), paths, snapshot_id, disk_ids, parent=parent)
            diffs.record_parent(paths, pid, snapshot_id)

    async def list_snapshots(self, handle: VmHandle) -> list[SnapshotInfo]:
        return snapshots.listed(self._paths(handle))

    async def delete_snapshot(self, handle: VmHandle, snapshot_id: str) -> None:
        async with self._lock(handle.vm_id):
            snapshots.delete(self._paths(handle), snapshot_id)

    async def restore(self, handle: VmHandle, snapshot_id: str) -> None:
        """Replace whatever runs by a fresh Firecracker resumed from `snapshot_id` (disks included).
        A disk-only snapshot (taken while stopped) leaves the VM stopped with the disks as they were."""
        paths = self._paths(handle)
        async with self._lock(handle.vm_id):
            with_memory = snapshots.check_exists(paths, snapshot_id)
            vm, _ = self._load_vm(paths)
            await self._kill(paths, "restore")
            await snapshots.restore_disks(paths, snapshot_id, [d.id for d in vm.spec.disks])
            if not with_memory:
                return
            memory = await diffs.memory_for(paths, snapshot_id)
            process, api = await self.launcher.launch(paths, vm)
            with process:
                try:
                    await snapshots.load(api, paths, snapshot_id, memory, track_dirty_pages=self.diff_snapshots)
                except HypervisorError:
                    await launcher.abort(paths, process, "restore failed")
                    raise
                diffs.record_parent(paths, process.pid, snapshot_id)
