"""Firecracker snapshot listing and deletion on real files (no Firecracker needed): complete snapshots
only, memory or disks-only as they are, a Diff's parent refused, and a hard link (a clone's) outliving
the deleted snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plasmavmc.errors import InvalidState, NotFound
from plasmavmc.hypervisor.firecracker import snapshots
from plasmavmc.hypervisor.firecracker.layout import FcPaths


def make(paths: FcPaths, snap: str, *, memory: bool, parent: str | None = None) -> Path:
    d = paths.snapshot_dir(snap)
    d.mkdir(parents=True)
    (d / "disk-root.raw").write_bytes(b"disk")
    if memory:
        (d / snapshots.VMSTATE).write_bytes(b"state")
        (d / snapshots.MEMORY).write_bytes(b"memory")
    if parent:
        (d / snapshots.PARENT).write_text(parent)
    return d


def test_list_and_delete(tmp_path: Path) -> None:
    paths = FcPaths.of(tmp_path, "4f1c7e5e-8c1e-4a57-9a55-1f2b3c4d5e6f", jailed=False)
    full = make(paths, "full", memory=True)
    make(paths, "diff", memory=True, parent="full")
    make(paths, "disks", memory=False)
    (paths.guest / "snapshots" / ".half.tmp").mkdir()  # being made: not listed
    listed = {s.id: s for s in snapshots.listed(paths)}
    assert set(listed) == {"full", "diff", "disks"}
    assert listed["full"].memory and not listed["disks"].memory and listed["full"].disk_ids == ("root",)

    with pytest.raises(InvalidState):  # "diff" needs it
        snapshots.delete(paths, "full")
    clone_link = tmp_path / "clone-memory"
    os.link(full / snapshots.MEMORY, clone_link)
    snapshots.delete(paths, "diff")
    snapshots.delete(paths, "full")
    assert {s.id for s in snapshots.listed(paths)} == {"disks"}
    assert clone_link.read_bytes() == b"memory"  # a clone's link keeps the memory file
    with pytest.raises(NotFound):
        snapshots.delete(paths, "full")
