"""The files a create puts in a Firecracker VM's guest dir from its images, and which of its files must
survive a host crash.

The kernel and initrd are hard links of the cached images when the jail's uid can read them as they are
(world-readable, or a root jail): a link shares the cached file's inode, so it is never chowned or
written (`launcher.jail_files` leaves them out). Each disk is the VM's own raw file (`disks.make_disk`).

`BootFiles` says which files a create makes from which cached files: two creates with equal ones make
the same files, so a warm pool entry can have them made ahead (`pool.py`), and a create that finds them
made keeps them; any others are removed first (`make_disk` keeps a disk that is there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.hypervisor.base import LocalImage
from plasmavmc.hypervisor.firecracker import jail
from plasmavmc.hypervisor.firecracker.disks import make_disk
from plasmavmc.hypervisor.firecracker.jail import JailerOptions
from plasmavmc.hypervisor.firecracker.layout import INITRD, KERNEL, FcPaths, disk_file
from plasmavmc.hypervisor.vmdir import HANDLE, IMAGES, VM
from plasmavmc.types.vm import VirtualMachine


@dataclass(frozen=True)
class Disk:
    """One disk a create makes: `disk_file(id)`, a raw copy of cached `image` grown to `size_gib`."""

    id: str
    image: Path
    format: str
    size_gib: int


@dataclass(frozen=True)
class BootFiles:
    """The files a create from images makes in a guest dir, and the cached files they come from."""

    kernel: Path
    initrd: Path | None
    disks: tuple[Disk, ...]

    @classmethod
    def of(cls, vm: VirtualMachine, boot: LocalImage, used: Mapping[str, LocalImage]) -> BootFiles:
        assert boot.kernel_path is not None
        disks = [(d, used[d.source.image_id or ""]) for d in vm.spec.disks]
        return cls(boot.kernel_path, boot.initrd_path,
                   tuple(Disk(d.id, image.disk_path, image.disk_format, d.size_gib) for d, image in disks))

    def disk_names(self) -> list[str]:
        return [disk_file(d.id) for d in self.disks]


async def place_boot_files(files: BootFiles, paths: FcPaths, *, jailer: JailerOptions, qemu_img: str,
                           durable: bool = True) -> None:
    """Kernel, initrd and every disk of `files` in the guest dir (`durable` as `disks.sparse_copy`)."""
    jail.link_or_copy(files.kernel, paths.guest / KERNEL, allow_link=_linkable(paths, jailer, files.kernel))
    if files.initrd is not None:
        jail.link_or_copy(files.initrd, paths.guest / INITRD, allow_link=_linkable(paths, jailer, files.initrd))
    for disk in files.disks:
        await make_disk(qemu_img, disk.image, disk.format, paths.disk(disk.id), disk.size_gib, durable=durable)


async def make_ahead(paths: FcPaths, files: BootFiles, *, jailer: JailerOptions, qemu_img: str) -> None:
    """A warm pool entry's guest dir with `files` made in it as a create makes them (not fsynced; its
    disks the jail's): `pool.WarmPool`'s `prepare`."""
    await place_boot_files(files, paths, jailer=jailer, qemu_img=qemu_img, durable=False)
    if paths.jailed:
        jail.give_to_jail(paths, jailer, files.disk_names())


def remove_boot_files(files: BootFiles, paths: FcPaths) -> None:
    """What `place_boot_files` of `files` made in the guest dir, removed (what is there of it)."""
    for name in [KERNEL, INITRD, *files.disk_names()]:
        (paths.guest / name).unlink(missing_ok=True)


def _linkable(paths: FcPaths, jailer: JailerOptions, image_file: Path) -> bool:
    return not paths.jailed or jailer.uid == 0 or image_file.stat().st_mode & 0o004 != 0


def durable_files(paths: FcPaths, vm: VirtualMachine) -> list[Path]:
    """What a create writes that must survive a host crash: its records, its disks, their directories."""
    return [paths.root / HANDLE, paths.root / VM, paths.root / IMAGES,
            *(paths.disk(d.id) for d in vm.spec.disks), paths.guest, paths.root, paths.root.parent]
