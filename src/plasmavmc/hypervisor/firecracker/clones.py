"""Firecracker VMs cloned from another VM's snapshot: the files, shared and not, and the first start.

A clone is made (`place`) in its own runtime dir from snapshot `S` of a source VM on the same node:

* `vmstate` and `memory` of `S` are HARD LINKS in the clone's guest dir under `clone-source/`: never
  copied, and never written (Firecracker maps the memory file MAP_PRIVATE through its `File` memory
  backend, so each clone's guest writes land in its own anonymous copy-on-write pages; the pages it
  only reads stay shared in the page cache by every clone). A link is its own name for the inode:
  deleting `S`, or the source VM, while clones exist unlinks the source's names only, and each clone
  keeps its files until it is deleted itself. That is why deleting a snapshot with clones is allowed.
* each disk is the clone's own sparse copy of the snapshot's disk (disks are written; the snapshot's
  stay as they were), at the name the device state refers to (`disk-<id>.raw`, guest-dir relative);
* the kernel and initrd are linked from the source (a later cold start of the clone boots them).

The marker `clone-pending` (in the VM dir) makes the clone's first `start` a `snapshot/load` of
`clone-source/` with `resume_vm` in a fresh Firecracker (its own `--id`, its own serial console FIFO
and log, its own jail and cgroup) instead of a boot; it is removed once that start succeeds. Only a
Full snapshot with memory can be cloned (a Diff's memory is partial); a source with NICs cannot (the
device state holds its MAC and tap: two clones would share one identity on the network).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.errors import HypervisorError, InvalidArgument, NotFound
from plasmavmc.hypervisor.firecracker import snapshots
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi
from plasmavmc.hypervisor.firecracker.disks import sparse_copy
from plasmavmc.hypervisor.firecracker.jail import link_or_copy
from plasmavmc.hypervisor.firecracker.layout import INITRD, KERNEL, FcPaths, disk_file
from plasmavmc.types.vm import VirtualMachine

SOURCE_DIR = "clone-source"
PENDING = "clone-pending"
FIELD = "source_snapshot.snapshot_id"


def pending(paths: FcPaths) -> bool:
    return (paths.root / PENDING).exists()


def check_clone(vm: VirtualMachine) -> None:
    """What a clone's own spec must satisfy: no NICs (see the module docstring)."""
    if vm.spec.network:
        raise InvalidArgument("source_snapshot", "a VM with NICs cannot be cloned: its MAC and tap are in the "
                                                 "snapshot's device state, so clones would share them")


def check_source(source: FcPaths, snapshot_id: str) -> Path:
    """The snapshot dir to clone from, refused (naming the field) unless it is a Full memory snapshot."""
    snap = source.snapshot_dir(snapshot_id)
    if not snap.is_dir():
        raise NotFound(f"VM {source.root.name} has no snapshot {snapshot_id}", field=FIELD)
    if not (snap / snapshots.VMSTATE).is_file() or not (snap / snapshots.MEMORY).is_file():
        raise InvalidArgument(FIELD, f"snapshot {snapshot_id} holds disks only (taken while stopped): "
                                     "a clone needs a snapshot of a running VM")
    if (snap / snapshots.PARENT).exists():
        raise InvalidArgument(FIELD, f"snapshot {snapshot_id} is a Diff snapshot (partial memory): clone a Full one")
    return snap


def _link(src: Path, dst: Path) -> None:
    """A hard link, never a copy: the point of a clone is that its memory file is shared."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HypervisorError(f"cannot link {src} at {dst} (the runtime dirs must share a filesystem): {exc}") from exc


async def place(source: FcPaths, snapshot_id: str, clone: FcPaths, disk_ids: Sequence[str], *,
                durable: bool = True) -> None:
    """Put the clone's files in place (see the module docstring) and mark its first start (`durable`:
    the disk copies flushed here, or by the caller later)."""
    snap = check_source(source, snapshot_id)
    if clone.started.exists():
        return  # a create resent after the clone ran: its files are in use, its first start is done
    into = clone.guest / SOURCE_DIR
    into.mkdir(mode=0o700, exist_ok=True)
    for name in (snapshots.VMSTATE, snapshots.MEMORY):
        _link(snap / name, into / name)
    for name in (KERNEL, INITRD):
        if (source.guest / name).exists():
            link_or_copy(source.guest / name, clone.guest / name)
    for disk_id in disk_ids:
        if not clone.disk(disk_id).exists():
            await asyncio.to_thread(functools.partial(sparse_copy, snap / disk_file(disk_id), clone.disk(disk_id),
                                                      durable=durable))
    (clone.root / PENDING).write_text(snapshot_id)


async def load(api: FirecrackerApi, clone: FcPaths) -> None:
    """Resume the clone from its linked snapshot in the fresh Firecracker behind `api`."""
    rel = clone.guest / SOURCE_DIR
    await snapshots.load(api, clone, SOURCE_DIR, rel / snapshots.MEMORY, vmstate=rel / snapshots.VMSTATE)


def done(clone: FcPaths) -> None:
    (clone.root / PENDING).unlink(missing_ok=True)
