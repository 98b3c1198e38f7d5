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

from plasmavmc.errors import AlreadyExists, HypervisorError, InvalidState, NotFound
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.disks import sparse_copy
from plasmavmc.hypervisor.firecracker.layout import FcPaths, disk_file
from plasmavmc.types.runtime import SnapshotInfo

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
               *, track_dirty_pages: bool = False, vmstate: Path | None = None) -> None:
    """Load `snapshot_id`'s device state (or `vmstate`'s) with guest memory from `memory` (its own file,
    a merge, or a clone's link), mapped MAP_PRIVATE by Firecracker: the file is never written."""
    state = (vmstate or paths.snapshot_dir(snapshot_id) / VMSTATE).relative_to(paths.guest)
    mem = memory.relative_to(paths.guest)
    try:
        await api.put("/snapshot/load", {"snapshot_path": str(state),
                                         "mem_backend": {"backend_type": "File", "backend_path": str(mem)},
                                         "enable_diff_snapshots": track_dirty_pages, "resume_vm": True})
    except HypervisorError as exc:
        raise HypervisorError(f"cannot restore snapshot {snapshot_id}: {exc.message}") from exc


def listed(paths: FcPaths) -> list[SnapshotInfo]:
    """The complete snapshots of the VM (not the `.<id>.tmp` ones being made), oldest first."""
    root = paths.guest / "snapshots"
    found: list[SnapshotInfo] = []
    for snap in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime) if root.is_dir() else []:
        if snap.name.startswith(".") or not snap.is_dir():
            continue
        disks = tuple(sorted(f.name[len("disk-"):-len(".raw")] for f in snap.glob("disk-*.raw")))
        found.append(SnapshotInfo(id=snap.name, created_at=int(snap.stat().st_mtime),
                                  memory=(snap / VMSTATE).is_file() and (snap / MEMORY).is_file(), disk_ids=disks))
    return found


def delete(paths: FcPaths, snapshot_id: str) -> None:
    """Remove a snapshot; refused (INVALID_STATE) while a Diff snapshot of the VM is relative to it.
    Clones made from it keep their own hard links (clones.py): deleting it never touches them."""
    snap = paths.snapshot_dir(snapshot_id)
    if not snap.is_dir():
        raise NotFound(f"VM {paths.root.name} has no snapshot {snapshot_id}", field="snapshot_id")
    for other in listed(paths):
        parent = paths.snapshot_dir(other.id) / PARENT
        if parent.is_file() and parent.read_text().strip() == snapshot_id:
            raise InvalidState(f"snapshot {other.id} is a Diff relative to {snapshot_id}: delete it first",
                               field="snapshot_id")
    gone = snap.with_name(f".{snapshot_id}.deleting")
    snap.rename(gone)  # atomically out of the listing, then removed
    shutil.rmtree(gone, ignore_errors=True)
