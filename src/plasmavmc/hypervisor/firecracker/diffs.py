"""Diff snapshots: which snapshot a new one is relative to, and a loadable memory file for a chain.

With dirty-page tracking on (`track_dirty_pages`), Firecracker can write a *Diff* snapshot whose memory
file is sparse: only the pages written since the previous snapshot of the same run (or since the restore
it started from) are there, at their offsets; everything else is a hole. Such a file cannot be loaded on
its own. Restoring snapshot N of a chain Full ← Diff ← … ← N therefore first *merges*: a sparse copy of
the Full snapshot's memory, then the data extents of each Diff in order written over it (what
Firecracker's `rebase-snap` tool does), into `snapshots/.merged-memory`, made afresh for each restore.

Which snapshot a new Diff is relative to is recorded in `<vm dir>/snapshot-parent` as "<pid> <id>":
the pid ties it to one Firecracker run, so a run that started fresh (no parent) takes a Full snapshot.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.common import write_atomic
from plasmavmc.hypervisor.firecracker.disks import copy_extents, sparse_copy
from plasmavmc.hypervisor.firecracker.layout import FcPaths
from plasmavmc.hypervisor.firecracker.snapshots import MEMORY, PARENT

MERGED = ".merged-memory"
MAX_CHAIN = 64


def parent_file(paths: FcPaths) -> Path:
    return paths.root / "snapshot-parent"


def record_parent(paths: FcPaths, pid: int, snapshot_id: str) -> None:
    write_atomic(parent_file(paths), f"{pid} {snapshot_id}".encode())


def parent_of_run(paths: FcPaths, pid: int) -> str | None:
    """The snapshot the running `pid` last took or was restored from; None for a fresh run."""
    try:
        run, _, snapshot_id = parent_file(paths).read_text().partition(" ")
    except FileNotFoundError:
        return None
    return snapshot_id if run == str(pid) and paths.snapshot_dir(snapshot_id).is_dir() else None


def chain(paths: FcPaths, snapshot_id: str) -> list[str]:
    """The snapshots whose memory makes up `snapshot_id`'s: the Full one first, `snapshot_id` last."""
    ids = [snapshot_id]
    while (parent := paths.snapshot_dir(ids[-1]) / PARENT).is_file():
        if len(ids) > MAX_CHAIN:
            raise HypervisorError(f"snapshot {snapshot_id}: diff chain longer than {MAX_CHAIN}")
        ids.append(parent.read_text().strip())
    return ids[::-1]


async def memory_for(paths: FcPaths, snapshot_id: str) -> Path:
    """A memory file `snapshot/load` can use for `snapshot_id` (merging a diff chain when needed)."""
    ids = chain(paths, snapshot_id)
    if len(ids) == 1:
        return paths.snapshot_dir(snapshot_id) / MEMORY
    merged = paths.guest / "snapshots" / MERGED
    await asyncio.to_thread(_merge, [paths.snapshot_dir(i) / MEMORY for i in ids], merged)
    return merged


def _merge(layers: list[Path], out: Path) -> None:
    tmp = out.with_name(f"{out.name}.tmp")
    sparse_copy(layers[0], tmp)
    try:
        with open(tmp, "r+b") as dst:
            for diff in layers[1:]:
                with open(diff, "rb") as src:
                    copy_extents(src.fileno(), dst.fileno())
            os.fsync(dst.fileno())
        st = out.parent.stat()
        os.chown(tmp, st.st_uid, st.st_gid)  # readable by a jailed, unprivileged Firecracker
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise HypervisorError(f"cannot merge diff snapshot memory into {out}: {exc}") from exc
