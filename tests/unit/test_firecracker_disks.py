"""A Firecracker VM's files from its images: `disks.make_disk` copies a raw image's data (holes kept) into
one temp file grown to the disk's size and renamed into place, leaves an existing disk alone and names
a missing image or a format it cannot take; `jail.link_or_copy` links a cached file straight to its
place, replaces what is there, and copies where no link is allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.firecracker.disks import GIB, make_disk
from plasmavmc.hypervisor.firecracker.jail import link_or_copy

MIB = 1024 * 1024


def sparse_image(path: Path) -> bytes:
    """1 MiB of data, 3 MiB of hole, 1 MiB of data."""
    head, tail = os.urandom(MIB), os.urandom(MIB)
    with open(path, "wb") as f:
        f.write(head)
        f.seek(4 * MIB)
        f.write(tail)
    return head + bytes(3 * MIB) + tail


def read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


@pytest.mark.parametrize("durable", [True, False])
async def test_raw_image_copied_with_its_holes_and_grown(tmp_path: Path, durable: bool) -> None:
    image, disk = tmp_path / "image.raw", tmp_path / "vm" / "disk-root.raw"
    disk.parent.mkdir()
    data = sparse_image(image)
    await make_disk("qemu-img", image, "raw", disk, 1, durable=durable)
    assert disk.stat().st_size == GIB
    assert read_at(disk, 0, len(data)) == data and read_at(disk, GIB - MIB, MIB) == bytes(MIB)
    assert disk.stat().st_blocks * 512 < 3 * MIB, "the image's hole and the growth were written out"
    assert sorted(p.name for p in disk.parent.iterdir()) == ["disk-root.raw"], "a temp file was left"


async def test_existing_disk_left_alone(tmp_path: Path) -> None:
    image, disk = tmp_path / "image.raw", tmp_path / "disk.raw"
    sparse_image(image)
    disk.write_bytes(b"the VM's own writes")
    await make_disk("qemu-img", image, "raw", disk, 1)
    assert disk.read_bytes() == b"the VM's own writes"


@pytest.mark.parametrize(("image_name", "fmt", "says"), [
    ("missing.raw", "raw", "does not exist"),
    (".", "raw", "does not exist"),  # a directory is no image file
    ("image.raw", "vmdk", "firecracker takes raw or qcow2"),
])
async def test_unusable_image_named(tmp_path: Path, image_name: str, fmt: str, says: str) -> None:
    sparse_image(tmp_path / "image.raw")
    disk = tmp_path / "vm" / "disk.raw"
    disk.parent.mkdir()
    with pytest.raises(HypervisorError, match=says):
        await make_disk("qemu-img", tmp_path / image_name, fmt, disk, 1)
    assert list(disk.parent.iterdir()) == []


def test_link_straight_to_place_then_replaced(tmp_path: Path) -> None:
    cached, other, placed = tmp_path / "kernel-a", tmp_path / "kernel-b", tmp_path / "guest" / "vmlinux"
    placed.parent.mkdir()
    cached.write_bytes(b"a")
    other.write_bytes(b"b")
    link_or_copy(cached, placed)
    assert placed.samefile(cached)
    link_or_copy(other, placed)  # something there already: replaced whole
    assert placed.samefile(other) and placed.read_bytes() == b"b"
    link_or_copy(cached, placed, allow_link=False)  # a copy: its own inode
    assert placed.read_bytes() == b"a" and not placed.samefile(cached)
    assert sorted(p.name for p in placed.parent.iterdir()) == ["vmlinux"]
