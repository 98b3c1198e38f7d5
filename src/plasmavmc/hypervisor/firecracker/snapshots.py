"""Firecracker snapshots: pause → snapshot/create (+ the disks) → resume; restore with snapshot/load.

A snapshot of a running VM is the directory `<guest dir>/snapshots/<id>/` holding Firecracker's
`vmstate` and `memory` files and a sparse copy of every disk taken while the vCPUs are paused, so
memory and disks agree; one of a stopped VM holds the disks only. It is built in
`snapshots/.<id>.tmp/` and renamed into place only when complete: a crash mid-snapshot never leaves a
directory that looks like a snapshot. The VM is resumed whatever happens.

Restore happens in a *fresh* Firecracker process (the caller's job: kill the old one, launch a new one
with no configuration), into which `load` puts the disks back and asks for `snapshot/load` with
`resume_vm`. Drive paths inside `vmstate` are the guest-dir-relative names the VM was configured
with, so they resolve in the new process as in the old, jailed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.errors import AlreadyExists, HypervisorError, NotFound
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.disks import sparse_copy
from plasmavmc.hypervisor.firecracker.layout import FcPaths, disk_file

VMSTATE = "vmstate"
MEMORY = "memory"
PARENT = "parent"  # in a Diff snapshot: the id of the snapshot its memory is relative to


async def pause(api: FirecrackerApi) -> None:
    await api.patch("/vm", {"state": "Paused"})


async def resume(api: FirecrackerApi) -> None:
    await api.patch("/vm", {"state": "Resumed"})


async def create(api: FirecrackerApi | None, paths: FcPaths, snapshot_id: str, disk_ids: Sequence[str],
                 *, parent: str | None = None) -> None:
    """With `api` (a running VM): memory + device state + disks, paused meanwhile. Without: disks only.
    With `parent` (dirty-page tracking on): a Diff snapshot, whose memory holds only the pages written
    since snapshot `parent` was taken or restored (see diffs.py)."""
    final = paths.snapshot_dir(snapshot_id)
    if final.exists():
        raise AlreadyExists(f"snapshot {snapshot_id} of VM {paths.root.name} already exists", field="snapshot_id")
    tmp = final.with_name(f".{snapshot_id}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    shutil.copystat(paths.guest, tmp)  # same owner/mode semantics as the guest dir (jail uid)
    with contextlib.suppress(OSError):
        shutil.chown(tmp, paths.guest.stat().st_uid, paths.guest.stat().st_gid)
    rel = tmp.relative_to(paths.guest)
    try:
        if api is None:
            await _copy_disks(paths, tmp, disk_ids)
        else:
            await pause(api)
            try:
                await api.put("/snapshot/create", {"snapshot_type": "Diff" if parent else "Full",
                                                   "snapshot_path": f"{rel}/{VMSTATE}",
                                                   "mem_file_path": f"{rel}/{MEMORY}"})
                await _copy_disks(paths, tmp, disk_ids)
                if parent:
                    (tmp / PARENT).write_text(parent)
            finally:
                await resume(api)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


async def _copy_disks(paths: FcPaths, into: Path, disk_ids: Sequence[str]) -> None:
    for disk_id in disk_ids:
        await asyncio.to_thread(sparse_copy, paths.disk(disk_id), into / disk_file(disk_id))


def check_exists(paths: FcPaths, snapshot_id: str) -> bool:
    """Whether snapshot `snapshot_id` holds memory (True) or only disks (False); NotFound if absent."""
    snap = paths.snapshot_dir(snapshot_id)
    if not snap.is_dir():
        raise NotFound(f"VM {paths.root.name} has no snapshot {snapshot_id}", field="snapshot_id")
    return (snap / VMSTATE).is_file() and (snap / MEMORY).is_file()


async def restore_disks(paths: FcPaths, snapshot_id: str, disk_ids: Sequence[str]) -> None:
    snap = paths.snapshot_dir(snapshot_id)
    for disk_id in disk_ids:
        await asyncio.to_thread(sparse_copy, snap / disk_file(disk_id), paths.disk(disk_id))


async def load(api: FirecrackerApi, paths: FcPaths, snapshot_id: str, memory: Path,
               *, track_dirty_pages: bool = False) -> None:
    """Load `snapshot_id`'s device state with guest memory from `memory` (its own file, or a merge)."""
    rel = paths.snapshot_dir(snapshot_id).relative_to(paths.guest)
    mem = memory.relative_to(paths.guest)
    try:
        await api.put("/snapshot/load", {"snapshot_path": f"{rel}/{VMSTATE}",
                                         "mem_backend": {"backend_type": "File", "backend_path": str(mem)},
                                         "enable_diff_snapshots": track_dirty_pages, "resume_vm": True})
    except HypervisorError as exc:
        raise HypervisorError(f"cannot restore snapshot {snapshot_id}: {exc.message}") from exc
